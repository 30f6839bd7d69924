"""Report what a data directory holds, and remove series past an age."""

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pacscommon.index import INDEX_DIR, SeriesEntry, entry_path, read_entry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    """What a data directory holds."""

    series: int
    instances: int
    bytes: int

    def as_json(self) -> str:
        """Return the usage as one line of JSON."""
        return json.dumps(
            {"series": self.series, "instances": self.instances, "bytes": self.bytes}
        )


def entries(data_dir: Path) -> list[SeriesEntry]:
    """Return every series in the index."""
    found = []
    for item in sorted((data_dir / INDEX_DIR).glob("*.json")):
        try:
            raw = json.loads(item.read_text("utf-8"))
            entry = read_entry(data_dir, str(raw["SeriesInstanceUID"]))
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("index entry %s unreadable: %s", item.name, exc)
            continue
        if entry is not None:
            found.append(entry)
    return found


def usage(data_dir: Path) -> Usage:
    """Count the series, instances and bytes the index names."""
    series = instances = size = 0
    for entry in entries(data_dir):
        series += 1
        for item in _instances(data_dir / entry.path):
            instances += 1
            size += item.stat().st_size
    return Usage(series, instances, size)


def _instances(folder: Path) -> list[os.DirEntry[str]]:
    """Return the instance files of a series folder."""
    try:
        with os.scandir(folder) as scan:
            return [e for e in scan if e.name.endswith(".dcm")]
    except FileNotFoundError:
        return []


def _newest(data_dir: Path, entry: SeriesEntry) -> float:
    """Return when the series last changed: its newest file or index entry."""
    index_file = entry_path(data_dir, entry.SeriesInstanceUID)
    times = [e.stat().st_mtime for e in _instances(data_dir / entry.path)]
    if index_file.exists():
        times.append(index_file.stat().st_mtime)
    return max(times, default=0.0)


def prune(data_dir: Path, max_age_days: float, now: float | None = None) -> list[str]:
    """Remove the series unchanged for ``max_age_days``; return their UIDs.

    The index entry goes first, so that no reader finds a series half-removed.
    """
    cutoff = (time.time() if now is None else now) - max_age_days * 86400
    removed = []
    for entry in entries(data_dir):
        if _newest(data_dir, entry) >= cutoff:
            continue
        entry_path(data_dir, entry.SeriesInstanceUID).unlink(missing_ok=True)
        folder = data_dir / entry.path
        shutil.rmtree(folder, ignore_errors=True)
        _remove_empty_parents(folder.parent, data_dir)
        removed.append(entry.SeriesInstanceUID)
        logger.info("removed series %s", entry.SeriesInstanceUID)
    return removed


def _remove_empty_parents(folder: Path, top: Path) -> None:
    """Remove ``folder`` and its parents below ``top`` while they are empty."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
