"""Describe retrieved instances: file, SOPInstanceUID and SHA-256, each read once.

Reading and hashing every file is most of a pull's own work on a large series
(262 MB of CT: about 0.3 s). An :class:`InstanceNotes` remembers what it has
read by the file's identity (device, inode, size, modification time), so the
files can be described while the PACS is still sending them
(:class:`ArrivalWatcher`, for C-MOVE) or as they are written
(:meth:`InstanceNotes.remember`, for C-GET, whose receiver hashes each file
while writing it), and the description of the copy in the output folder, a
hard link of the same file, costs a ``stat``. A copy made across filesystems
is a new file and is read again.
"""

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from pacscommon.files import FileKey, file_key
from pacscommon.headscan import (
    SOP_INSTANCE_UID,
    DataSetHead,
    part10_head,
    scan_layout,
)
from pacscommon.index import SeriesEntry, read_entry
from pacsretrieve.output import instance_names

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
HEAD_BYTES = 64 * 1024
# How often the watcher looks for new files: first, and at most.
FIRST_LOOK = 0.02
LAST_LOOK = 0.2
# The pause after a look is at least this many times the look's own time.
LISTING_SHARE = 4.0
# How much nicer the watcher is than its process: it uses the CPU the
# transfer leaves. 19 is the nicest there is.
WATCHER_NICE = 10
MAX_NICE = 19


class InstanceNotes:
    """The SHA-256 and SOPInstanceUID of files read so far, by file identity."""

    def __init__(self) -> None:
        self._known: dict[FileKey, tuple[str, str | None]] = {}
        self._lock = threading.Lock()

    def note(self, path: Path | str) -> tuple[str, str | None]:
        """Return a file's SHA-256 and SOPInstanceUID, reading it if need be."""
        key = file_key(path)
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        digest, first, whole = _read_whole(path)
        found = (digest, _sop_instance_uid(path, first, whole))
        with self._lock:
            self._known[key] = found
        return found

    def remember(self, key: FileKey, digest: str, head: DataSetHead) -> None:
        """Keep what a receiver learned of a file as it wrote it."""
        found = scan_layout(head, SOP_INSTANCE_UID)
        if found is None:
            # The head alone does not say; the file is read when described.
            return
        with self._lock:
            self._known[key] = (digest, found["SOPInstanceUID"])

    def describe(self, folder: Path, outputdir: Path) -> list[dict[str, Any]]:
        """Return, for each instance in ``folder``, its file, UID and SHA-256."""
        described = []
        relative = folder.relative_to(outputdir).as_posix()
        for name in instance_names(folder):
            digest, uid = self.note(os.path.join(folder, name))
            described.append(
                {
                    "file": f"{relative}/{name}",
                    "SOPInstanceUID": uid,
                    "sha256": digest,
                }
            )
        return described


class ArrivalWatcher:
    """Read the files of some series as they arrive, in a thread of its own."""

    def __init__(self, notes: InstanceNotes, data_dir: Path, uids: list[str]) -> None:
        self.notes = notes
        self.data_dir = data_dir
        self.uids = uids
        self.seen: set[str] = set()
        self.entries: dict[str, SeriesEntry] = {}
        self.listing = 0.0  # seconds the last look spent listing folders
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="arrival-watcher", daemon=True
        )

    def __enter__(self) -> "ArrivalWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        """Note new files until told to stop; back off while nothing comes."""
        _lower_priority()
        pause = FIRST_LOOK
        while not self._stop.wait(pause):
            self.listing = 0.0
            found = sum(self._note_series(uid) for uid in self.uids)
            # A look lists whole folders: as a series grows, look less often,
            # so that listing stays a small share of the watcher's work.
            pause = FIRST_LOOK if found else min(pause * 2, LAST_LOOK)
            pause = max(pause, LISTING_SHARE * self.listing)

    def _note_series(self, uid: str) -> int:
        """Note the files of one series that arrived since the last look."""
        try:
            entry = self.entries.get(uid) or read_entry(self.data_dir, uid)
            if entry is None:
                return 0
            # An entry, once written, never changes (pacscommon.index).
            self.entries[uid] = entry
            seen = self.seen
            started = time.monotonic()
            with os.scandir(self.data_dir / entry.path) as items:
                names = [
                    i.path
                    for i in items
                    if i.path not in seen and i.name.endswith(".dcm")
                ]
            self.listing += time.monotonic() - started
            return self._note_files(names)
        except (OSError, ValueError, KeyError) as exc:
            # A file renamed or removed under us, or an index entry the wait
            # itself will report: the final pass reads what is there.
            logger.debug("arrival watcher, series %s: %s", uid, exc)
            return 0

    def _note_files(self, names: list[str]) -> int:
        """Note the files not seen yet; return how many."""
        found = 0
        for name in names:
            if self._stop.is_set():
                break
            self.notes.note(name)
            self.seen.add(name)
            found += 1
        return found


def _lower_priority() -> None:
    """Let the PACS and the listener have the CPU first, where they share it."""
    # On Linux a thread is a task of its own, and setpriority() of its native
    # ID sets its nice value alone. Elsewhere this may fail; it only matters
    # for speed.
    task = threading.get_native_id()
    try:
        nice = os.getpriority(os.PRIO_PROCESS, task) + WATCHER_NICE
        os.setpriority(os.PRIO_PROCESS, task, min(nice, MAX_NICE))
    except (AttributeError, OSError) as exc:
        logger.debug("arrival watcher keeps its priority: %s", exc)


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes, in lower-case hex."""
    return _read_whole(path)[0]


def _read_whole(path: Path | str) -> tuple[str, bytes, bool]:
    """Read a file once; return its SHA-256, its first block, whether that is all."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        first = block = f.read(CHUNK)
        whole = len(first) < CHUNK
        while block:
            digest.update(block)
            block = f.read(CHUNK)
    return digest.hexdigest(), first, whole


def _sop_instance_uid(path: Path | str, first: bytes, whole: bool) -> str | None:
    """Return the SOPInstanceUID of a stored instance, read without its pixels."""
    # The attributes sit in the first kilobytes; a larger slice only costs.
    head = part10_head(first[:HEAD_BYTES], whole and len(first) <= HEAD_BYTES)
    found = scan_layout(head, SOP_INSTANCE_UID) if head is not None else None
    if found is not None:
        return found["SOPInstanceUID"]
    # pydicom only for the files the head scan cannot read.
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
    except (InvalidDicomError, ValueError, TypeError, EOFError, OSError):
        return None
    value = ds.get("SOPInstanceUID")
    return None if value is None else str(value)
