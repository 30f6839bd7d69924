"""Where the benchmarks' receivers write: a journaled ext4 file system on the disk.

The root file system of this kind of machine is ext4 without a journal, and
such an ext4 does not hand out an inode freed in the last minutes: each new
file's inode search steps past every recently deleted one (the kernel's
``recently_deleted()`` in ``find_inode_bit``, most of the time in a ``perf``
profile). A benchmark deletes thousands of files between runs, so creating a
file in a folder near them took 0.3 to 0.5 ms instead of 0.01 ms, and a
receiver's figure for 5000 small instances depended on which block group its
folder landed in, not on the receiver. Servers' volumes have a journal. So the
receivers write on an ext4 image with its journal, kept in
``bench/work/scratch.img`` and loop-mounted on ``bench/work/scratch`` (root
and a loop device are needed; the mount is left for the next benchmark). If it
cannot be mounted, they write in ``bench/work/scratch`` on the root file
system, and :func:`description` says so in the results.
"""

import os
import subprocess
import sys
from pathlib import Path

import data

IMAGE = data.WORK / "scratch.img"
MOUNT = data.WORK / "scratch"
SIZE_MIB = 6 * 1024  # the largest benchmark keeps about 1.5 GB there at once
_state = {"mounted": False, "why": ""}


def root() -> Path:
    """Return the folder the receivers write in, mounting the image if need be."""
    MOUNT.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(MOUNT):
        _state["mounted"] = True
        return MOUNT
    try:
        if not IMAGE.exists():
            _make_image()
        _run(["mount", "-o", "loop", str(IMAGE), str(MOUNT)])
    except (OSError, subprocess.CalledProcessError) as exc:
        said = getattr(exc, "stderr", b"") or b""
        _state["why"] = f"{exc} {said.decode(errors='replace').strip()}".strip()
        print(f"bench: scratch file system not mounted ({_state['why']}); the "
              "receivers write on the root file system", file=sys.stderr)  # fmt: skip
        return MOUNT
    _state["mounted"] = True
    return MOUNT


def description() -> str:
    """Say, for the results, where the receivers wrote."""
    if _state["mounted"]:
        return (
            "the receivers write on an ext4 file system with a journal, an image "
            "on the same disk loop-mounted on bench/work/scratch (bench/scratch.py "
            "says why: the root ext4 has no journal and creates files slowly next "
            "to recently deleted ones)"
        )
    return (
        "the receivers write on the root file system (ext4 without a journal: "
        f"the scratch image could not be mounted: {_state['why']})"
    )


def _make_image() -> None:
    """Create the image, every block written, and an ext4 with a journal on it."""
    partial = IMAGE.with_suffix(".partial")
    print(f"bench: writing {SIZE_MIB} MiB of {IMAGE} (once)", file=sys.stderr)
    # Every block of the image is written now: a sparse image would allocate
    # blocks of the root file system during the first runs, and slow them.
    _run(["dd", "if=/dev/zero", f"of={partial}", "bs=1M", f"count={SIZE_MIB}",
          "conv=fsync", "status=none"])  # fmt: skip
    # nodiscard: mkfs would punch the written blocks out of the file again;
    # no lazy initialization: nothing zeroes in the background during a run.
    options = "nodiscard,lazy_itable_init=0,lazy_journal_init=0"
    _run(["mkfs.ext4", "-q", "-F", "-E", options, str(partial)])
    partial.rename(IMAGE)


def _run(command: list[str]) -> None:
    """Run a set-up command; raise with its error output if it fails."""
    subprocess.run(command, check=True, capture_output=True)
