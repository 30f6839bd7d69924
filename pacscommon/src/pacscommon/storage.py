"""The storage engine: name, place and index each instance a sender stores.

pynetdicom streams every received data set to a temporary Part-10 file (its
``STORE_RECV_CHUNKED_DATASET`` mode), which this engine keeps in
``<data>/.incoming/`` so that it is on the same filesystem as the tree. Storing
an instance then means reading the few attributes the layout needs (never the
pixel data) and renaming the file into its series folder: the bytes written are
the bytes received, and a file appears whole or not at all.
"""

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread

from pacscommon.dicomtext import element_text
from pacscommon.errors import InputError
from pacscommon.headscan import DataSetHead, part10_head, scan_layout
from pacscommon.incoming import IncomingFolder
from pacscommon.index import (
    INCOMING_DIR,
    INDEX_DIR,
    SeriesEntry,
    create_entry,
    read_entry,
)
from pacscommon.layout import fit_component, instance_name, sanitize, series_path

logger = logging.getLogger(__name__)

# The attributes the layout and the index need.
LAYOUT_KEYWORDS = (
    "SpecificCharacterSet",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "StudyDescription",
    "AccessionNumber",
    "StudyDate",
    "StudyInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "SeriesInstanceUID",
    "InstanceNumber",
    "SOPInstanceUID",
)


class InstanceRejected(Exception):
    """An instance that cannot be stored, with the status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# How much of a received file is read for the layout's attributes.
FILE_HEAD_BYTES = 16 * 1024

# PS3.4 B.2.3: C-STORE statuses
STORE_SUCCESS = 0x0000
STORE_OUT_OF_RESOURCES = 0xA700
STORE_CANNOT_UNDERSTAND = 0xC000
STORE_MISMATCH = 0xA900  # data set does not match SOP class


@dataclass(frozen=True)
class StoredInstance:
    """What became of one stored instance."""

    SeriesInstanceUID: str
    SOPInstanceUID: str
    path: str
    duplicate: bool


class StorageEngine:
    """Write received instances into a data directory's series tree."""

    def __init__(
        self,
        data_dir: Path,
        prefix_by_aet: bool = False,
        fsync: bool = False,
        reserve_bytes: int = 0,
    ):
        self.data_dir = data_dir
        self.incoming = data_dir / INCOMING_DIR
        self.prefix_by_aet = prefix_by_aet
        self.fsync = fsync
        self.reserve_bytes = reserve_bytes
        self._series: dict[str, SeriesEntry] = {}
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Make the data directory ready, or raise an input error saying why."""
        try:
            for folder in (self.data_dir, self.incoming, self.data_dir / INDEX_DIR):
                folder.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.incoming)
            probe.close()
        except OSError as exc:
            raise InputError(
                f"data directory {self.data_dir} cannot be written: "
                f"{exc.strerror}; give a writable directory"
            ) from exc
        removed = self.sweep_incoming()
        if removed:
            logger.warning("removed %d unfinished files left in .incoming", removed)

    def incoming_folder(self) -> IncomingFolder:
        """Return where data sets for this engine arrive, with its reserve."""
        return IncomingFolder(self.incoming, self.reserve_bytes)

    def sweep_incoming(self) -> int:
        """Remove files left in ``.incoming`` by a run that was killed."""
        removed = 0
        for leftover in self.incoming.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def store(
        self, received: Path, calling_aet: str = "", head: DataSetHead | None = None
    ) -> StoredInstance:
        """Move a received Part-10 file into its series folder.

        ``head``, the data set's first bytes if the caller has them, mostly
        spares parsing the file for the attributes the layout needs.
        """
        if head is None:
            head = _file_head(received)
        attrs = scan_layout(head) if head is not None else None
        if attrs is None:
            attrs = read_layout_attributes(received)
        uid = attrs.get("SeriesInstanceUID") or ""
        sop_uid = attrs.get("SOPInstanceUID") or ""
        if not uid.strip(" \x00") or not sop_uid.strip(" \x00"):
            raise InstanceRejected(
                "data set has no SeriesInstanceUID or SOPInstanceUID",
                STORE_CANNOT_UNDERSTAND,
            )
        name = instance_name(attrs)
        # Paths as strings: this runs for every instance received.
        entry = self._series_entry(attrs, calling_aet)
        target = os.path.join(self.data_dir, entry.path, name)
        duplicate = os.path.lexists(target)
        if self.fsync:
            _fsync_file(received)
        try:
            os.replace(received, target)
        except FileNotFoundError:
            if not received.exists():
                raise
            target = self._replace_series(received, attrs, calling_aet, name)
        if self.fsync:
            _fsync_dir(os.path.dirname(target))
        return StoredInstance(uid, sop_uid, target, duplicate)

    def _replace_series(
        self, received: Path, attrs: dict[str, str | None], calling_aet: str, name: str
    ) -> str:
        """Place an instance whose series folder went away; return its path.

        The folder (and perhaps its index entry) was removed while we ran: the
        entry is read again, or made anew, and the folder made again.
        """
        uid = (attrs.get("SeriesInstanceUID") or "").strip(" \x00")
        with self._lock:
            self._series.pop(uid, None)
        target = self.data_dir / self._series_entry(attrs, calling_aet).path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(received, target)
        return str(target)

    def _series_entry(
        self, attrs: dict[str, str | None], calling_aet: str
    ) -> SeriesEntry:
        """Return the index entry of the instance's series, making it if new."""
        uid = (attrs.get("SeriesInstanceUID") or "").strip(" \x00")
        with self._lock:
            # Known series are not looked up on disk: a folder removed since
            # shows when the instance is renamed into it (_replace_series).
            known = self._series.get(uid)
            if known is not None:
                return known
            entry = read_entry(self.data_dir, uid)
            if entry is None:
                entry = self._new_series(attrs, uid, calling_aet)
            self._series[uid] = entry
            return entry

    def _new_series(
        self, attrs: dict[str, str | None], uid: str, calling_aet: str
    ) -> SeriesEntry:
        """Make the folder of a series first seen now, and its index entry."""
        relative = series_path(attrs).relative
        if self.prefix_by_aet:
            relative = fit_component(sanitize(calling_aet) or "_") / relative
        (self.data_dir / relative).mkdir(parents=True, exist_ok=True)
        entry = SeriesEntry(
            SeriesInstanceUID=uid,
            StudyInstanceUID=(attrs.get("StudyInstanceUID") or "").strip(" \x00"),
            path=relative.as_posix(),
        )
        entry = create_entry(self.data_dir, entry)
        logger.info("new series %s", uid)
        logger.debug("series %s folder %s", uid, entry.path)
        return entry


def read_layout_attributes(path: Path) -> dict[str, str | None]:
    """Read the attributes the layout needs from a Part-10 file, not its pixels."""
    try:
        ds = dcmread(
            path,
            stop_before_pixels=True,
            specific_tags=list(LAYOUT_KEYWORDS),
            defer_size=1024,
        )
        return {kw: element_text(ds, kw) for kw in LAYOUT_KEYWORDS[1:]}
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on bad bytes
        raise InstanceRejected(
            f"data set cannot be parsed: {exc}", STORE_CANNOT_UNDERSTAND
        ) from exc


def _file_head(path: Path) -> DataSetHead | None:
    """Return the data set head of a Part-10 file, read from its first bytes."""
    try:
        with open(path, "rb") as f:
            first = f.read(FILE_HEAD_BYTES)
    except OSError:
        return None
    return part10_head(first, whole=len(first) < FILE_HEAD_BYTES)


def _fsync_file(path: Path) -> None:
    """Flush a file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path | str) -> None:
    """Flush a folder's entries to the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
