"""The per-series index: the one contract between the storage engine and readers.

``<data>/.index/<SeriesInstanceUID>.json`` is created once, atomically, when a
series folder is made. It names the folder; the number of instances stored is
the number of ``*.dcm`` files in it. Readers need read access only and take no
locks, so the index works from another container and on network filesystems.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pacscommon.files import create_temp
from pacscommon.layout import uid_file_name

logger = logging.getLogger(__name__)

INDEX_DIR = ".index"
INCOMING_DIR = ".incoming"


@dataclass(frozen=True)
class SeriesEntry:
    """One series in the index."""

    SeriesInstanceUID: str
    StudyInstanceUID: str
    path: str

    def folder(self, data_dir: Path) -> Path:
        """Return the series folder under ``data_dir``."""
        return data_dir / self.path

    def count(self, data_dir: Path) -> int:
        """Return how many instances the series folder holds now."""
        return count_instances(self.folder(data_dir))


def count_instances(folder: Path) -> int:
    """Return the number of ``*.dcm`` files in ``folder`` (0 if it is absent)."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(".dcm"))
    except FileNotFoundError:
        return 0


def entry_path(data_dir: Path, SeriesInstanceUID: str) -> Path:
    """Return where the index entry of a series lives."""
    return data_dir / INDEX_DIR / uid_file_name(SeriesInstanceUID, ".json")


def read_entry(data_dir: Path, SeriesInstanceUID: str) -> SeriesEntry | None:
    """Return the index entry of a series, or ``None`` if it has none yet."""
    try:
        text = entry_path(data_dir, SeriesInstanceUID).read_text("utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    return SeriesEntry(
        SeriesInstanceUID=str(data["SeriesInstanceUID"]),
        StudyInstanceUID=str(data["StudyInstanceUID"]),
        path=str(data["path"]),
    )


def create_entry(data_dir: Path, entry: SeriesEntry) -> SeriesEntry:
    """Write ``entry`` unless the series has one already; return the one in force.

    The entry is written in the incoming folder and hard-linked into place, so
    of two writers at the same moment, in any process, exactly one wins and
    both get its entry back.
    """
    final = entry_path(data_dir, entry.SeriesInstanceUID)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(data_dir / INCOMING_DIR, suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(entry), f, indent=2)
        os.link(tmp, final)
    except FileExistsError:
        existing = read_entry(data_dir, entry.SeriesInstanceUID)
        if existing is not None:
            return existing
        raise
    finally:
        os.unlink(tmp)
    logger.debug("index entry %s -> %s", entry.SeriesInstanceUID, entry.path)
    return entry
