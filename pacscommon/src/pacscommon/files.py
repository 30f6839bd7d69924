"""New files made to be renamed into place, readable as the umask allows."""

import os
import secrets
from pathlib import Path

# What identifies a file's bytes without reading them: device, inode, size and
# modification time.
FileKey = tuple[int, int, int, int]

# rw for everyone, less the process's umask, like any file ``open`` makes.
_MODE = 0o666


def create_temp(
    folder: Path, prefix: str = ".tmp-", suffix: str = ""
) -> tuple[int, str]:
    """Create a new file in ``folder``; return its descriptor and path.

    Unlike ``tempfile.mkstemp``, whose files are private (0600), the file gets
    the mode the umask gives, so that readers in other containers or of other
    users can read what is renamed into place.
    """
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE), str(path)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def file_key(path: str | Path) -> FileKey:
    """Return what identifies a file's bytes without reading them."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
