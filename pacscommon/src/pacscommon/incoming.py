"""Where a data set goes while it arrives: a file in the engine's ``.incoming``.

pynetdicom streams a received C-STORE data set into a temporary file that it
opens itself (its ``STORE_RECV_CHUNKED_DATASET`` mode). This module gives it an
:class:`IncomingFile` instead, so that the bytes land on the data directory's
filesystem (a rename then makes them whole), a data set that arrives below the
free-space reserve is never written at all, and a disk that fills up in the
middle of one costs that instance only: the file is removed, the rest of the
data set is read and dropped, and the C-STORE is answered "out of resources".
"""

import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pynetdicom.dimse_messages
from pynetdicom import AE

from pacscommon.filemeta import create_fields, write_fields
from pacscommon.files import create_temp

logger = logging.getLogger(__name__)

_ENGINE_ATTR = "_pacs_incoming"
# The free space is looked up again after at most this long, and sooner once
# the bytes written since the last look could have used up half the margin
# above the reserve that it showed.
RESERVE_LOOK_SECONDS = 1.0


class IncomingFile:
    """A data set being received; quacks like pynetdicom's temporary file."""

    def __init__(self, incoming: "IncomingFolder", check_reserve: bool = True) -> None:
        fd, name = create_temp(incoming.folder, suffix=".dcm")
        self.name = name
        self.incoming = incoming
        self._fp = os.fdopen(fd, "wb")
        self.error: OSError | None = None
        # pynetdicom calls ``.file.flush()`` after each fragment.
        self.file = self
        if check_reserve:
            self.check_reserve()

    def check_reserve(self) -> None:
        """Fail the instance now if the disk is below the free-space reserve."""
        if self.error is None and self.incoming.below_reserve():
            self._fail(OSError(errno.ENOSPC, "below the free-space reserve"))

    def write(self, data: bytes | memoryview) -> int:
        """Write a fragment; after a failure, drop it."""
        if self.error is None:
            try:
                self._fp.write(data)
            except OSError as exc:
                self._fail(exc)
            self.incoming.spent(len(data))
        return len(data)

    def flush(self) -> None:
        """Flush what was written; a failure here fails the instance."""
        if self.error is None:
            try:
                self._fp.flush()
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        """Close the file (it stays on disk unless the instance failed)."""
        if not self._fp.closed:
            try:
                self._fp.close()
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        """Give up on this instance: remove its file, keep the reason."""
        self.error = exc
        try:
            self._fp.close()
        except OSError:
            pass
        Path(self.name).unlink(missing_ok=True)


class IncomingFolder:
    """The folder and reserve that one AE's received data sets go to.

    Looking up the free space is a system call per instance; it is skipped
    while the last look left room to spare (RESERVE_LOOK_SECONDS). Every
    association of a server shares one folder, from its own thread.
    """

    def __init__(self, folder: Path, reserve_bytes: int = 0) -> None:
        self.folder = folder
        self.reserve_bytes = reserve_bytes
        self._lock = threading.Lock()
        self._room = 0  # bytes that may still be written before the next look
        self._looked = 0.0

    def open(self, check_reserve: bool = True) -> IncomingFile:
        """Return a new incoming file, failed at once if below the reserve."""
        return IncomingFile(self, check_reserve)

    def below_reserve(self) -> bool:
        """Return whether the free space is below the reserve."""
        if not self.reserve_bytes:
            return False
        now = time.monotonic()
        with self._lock:
            if self._room > 0 and now - self._looked < RESERVE_LOOK_SECONDS:
                return False
        free = shutil.disk_usage(self.folder).free
        with self._lock:
            self._looked = now
            self._room = (free - self.reserve_bytes) // 2
        return free < self.reserve_bytes

    def spent(self, count: int) -> None:
        """Count bytes written against the room the last look left."""
        if self.reserve_bytes:
            with self._lock:
                self._room -= count


def attach(ae: AE, incoming: IncomingFolder) -> None:
    """Make the data sets ``ae`` receives arrive in ``incoming``."""
    setattr(ae, _ENGINE_ATTR, incoming)
    _install()


def _open_incoming(*args: Any, **kwargs: Any) -> Any:
    """Open the file for a data set on the receiving AE's incoming folder."""
    # pynetdicom decodes P-DATA in the association's DUL thread.
    assoc = getattr(threading.current_thread(), "assoc", None)
    incoming = getattr(getattr(assoc, "ae", None), _ENGINE_ATTR, None)
    if incoming is None:
        return tempfile.NamedTemporaryFile(*args, **kwargs)
    return incoming.open()


def _install() -> None:
    """Have pynetdicom open incoming files through this module."""
    # NOTE: pynetdicom opens the file of a chunked C-STORE with the
    # NamedTemporaryFile name in its dimse_messages module; remove once
    # pynetdicom lets an SCP say where and how received data sets are written.
    pynetdicom.dimse_messages.NamedTemporaryFile = _open_incoming  # type: ignore[assignment]
    # NOTE: the file meta of each received instance, written without pydicom's
    # dataset machinery (same bytes, see pacscommon.filemeta); remove once
    # pynetdicom writes it cheaply itself.
    pynetdicom.dimse_messages.create_file_meta = create_fields  # type: ignore[assignment]
    pynetdicom.dimse_messages.write_file_meta_info = write_fields  # type: ignore[assignment]
