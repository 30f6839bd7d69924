"""Wait until the instances the PACS says it sent are on disk.

The storage engine's index names each series folder; the number of ``*.dcm``
files there is the number of instances stored. A plain read of a folder works
from another container and on network filesystems, so the wait polls, with a
back-off, until the count is reached or no time is left.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pacscommon.index import SeriesEntry, count_instances, read_entry

logger = logging.getLogger(__name__)

FIRST_POLL = 0.01
LAST_POLL = 0.5


@dataclass(frozen=True)
class Arrival:
    """What is on disk for one series."""

    entry: SeriesEntry | None
    count: int


def look(data_dir: Path, SeriesInstanceUID: str) -> Arrival:
    """Return what is on disk for a series now."""
    entry = read_entry(data_dir, SeriesInstanceUID)
    if entry is None:
        return Arrival(None, 0)
    return Arrival(entry, count_instances(data_dir / entry.path))


def wait_for(
    data_dir: Path, SeriesInstanceUID: str, expected: int, timeout: float
) -> Arrival:
    """Return once ``expected`` instances are on disk, or when ``timeout`` passes.

    The clock restarts whenever a new instance appears, so a slow but steady
    delivery is not cut off; ``timeout`` bounds the time with nothing new.
    """
    arrival = look(data_dir, SeriesInstanceUID)
    deadline = time.monotonic() + timeout
    pause = FIRST_POLL
    while arrival.count < expected and time.monotonic() < deadline:
        # A back-off between polls of the folder, not a wait for the data.
        time.sleep(pause)
        pause = min(pause * 2, LAST_POLL)
        now = look(data_dir, SeriesInstanceUID)
        if now.count > arrival.count:
            deadline = time.monotonic() + timeout
            pause = FIRST_POLL
        arrival = now
    if arrival.count < expected:
        logger.warning(
            "series %s: %d of %d instances on disk after waiting %.0f s",
            SeriesInstanceUID,
            arrival.count,
            expected,
            timeout,
        )
    return arrival
