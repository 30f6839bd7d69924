"""Wait until the instances the PACS says it sent are on disk.

The storage engine's index names each series folder; the number of ``*.dcm``
files there is the number of instances stored, however many associations they
came over. A plain read of a folder works from another container and on
network filesystems, so the wait polls, with a back-off, until the count is
reached or no time is left: ``inactivity`` seconds with nothing new, or the
overall deadline.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pacscommon.index import SeriesEntry, count_instances, read_entry

logger = logging.getLogger(__name__)

FIRST_POLL = 0.01
LAST_POLL = 0.5
PROGRESS_EVERY = 2.0  # seconds between progress lines of one wait


@dataclass(frozen=True)
class Arrival:
    """What is on disk for one series."""

    entry: SeriesEntry | None
    count: int


@dataclass(frozen=True)
class WaitBounds:
    """How long a wait may last."""

    inactivity: float
    deadline: float | None = None  # a time.monotonic() value

    def end(self, last_change: float) -> float:
        """Return when a wait whose count last changed at ``last_change`` ends."""
        end = last_change + self.inactivity
        return end if self.deadline is None else min(end, self.deadline)


def look(data_dir: Path, SeriesInstanceUID: str) -> Arrival:
    """Return what is on disk for a series now."""
    entry = read_entry(data_dir, SeriesInstanceUID)
    if entry is None:
        return Arrival(None, 0)
    return Arrival(entry, count_instances(data_dir / entry.path))


def look_all(data_dir: Path, uids: list[str]) -> dict[str, Arrival]:
    """Return what is on disk for each of several series now."""
    return {uid: look(data_dir, uid) for uid in uids}


def total(arrivals: dict[str, Arrival]) -> int:
    """Return the number of instances on disk over several series."""
    return sum(a.count for a in arrivals.values())


def wait_for(
    data_dir: Path,
    expected: dict[str, int | None],
    target: int,
    bounds: WaitBounds,
) -> dict[str, Arrival]:
    """Return once ``target`` instances of the series are on disk, or time is up.

    ``expected`` maps each SeriesInstanceUID to the number of instances the query
    counted (``None`` if unknown), for the progress lines.
    """
    uids = list(expected)
    arrivals = look_all(data_dir, uids)
    changed = logged = time.monotonic()
    pause = FIRST_POLL
    while total(arrivals) < target and time.monotonic() < bounds.end(changed):
        # A back-off between polls of the folders, not a wait for the data.
        time.sleep(pause)
        pause = min(pause * 2, LAST_POLL)
        now = look_all(data_dir, uids)
        if total(now) > total(arrivals):
            changed, pause = time.monotonic(), FIRST_POLL
        if changed - logged >= PROGRESS_EVERY:
            _log_progress(now, expected, target)
            logged = changed
        arrivals = now
    if total(arrivals) < target:
        logger.warning(
            "%s: %d of %d instances on disk when the wait ended",
            ", ".join(f"series {u}" for u in uids),
            total(arrivals),
            target,
        )
    return arrivals


def _log_progress(
    arrivals: dict[str, Arrival], expected: dict[str, int | None], target: int
) -> None:
    """Log, per series, how many instances are on disk of how many expected."""
    for uid, arrival in arrivals.items():
        of = expected[uid] if expected[uid] is not None else target
        logger.info("series %s: %d of %d instances received", uid, arrival.count, of)
