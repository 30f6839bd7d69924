"""Event handlers of the storage SCP: C-STORE, C-ECHO and association life.

Handlers return a status and never raise: a fault becomes a failure status and
a log line, and the SCP keeps serving.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynetdicom import Association, evt

from pacscommon.headscan import DataSetHead
from pacscommon.incoming import IncomingFile
from pacscommon.storage import (
    STORE_CANNOT_UNDERSTAND,
    STORE_OUT_OF_RESOURCES,
    STORE_SUCCESS,
    InstanceRejected,
    StorageEngine,
)

logger = logging.getLogger(__name__)

ECHO_SUCCESS = 0x0000


@dataclass
class AssociationStats:
    """What one association brought."""

    peer: str
    calling_aet: str
    started: float = field(default_factory=time.monotonic)
    instances: int = 0
    duplicates: int = 0
    failures: int = 0
    bytes: int = 0


class StorageHandlers:
    """The handlers that connect pynetdicom's events to a storage engine."""

    def __init__(self, engine: StorageEngine) -> None:
        self.engine = engine
        self._stats: dict[Association, AssociationStats] = {}
        self._lock = threading.Lock()

    def bindings(self) -> list[tuple[evt.EventType, Callable[..., Any]]]:
        """Return the (event, handler) pairs to give pynetdicom."""
        return [
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_ACCEPTED, self.on_accepted),
            (evt.EVT_RELEASED, self.on_released),
            (evt.EVT_ABORTED, self.on_aborted),
            (evt.EVT_CONN_CLOSE, self.on_closed),
        ]

    def on_echo(self, event: evt.Event) -> int:
        """Answer a C-ECHO."""
        return ECHO_SUCCESS

    def on_store(self, event: evt.Event) -> int:
        """Store one instance; return its C-STORE status."""
        partial = getattr(event.request, "_dataset_file", None)
        try:
            return self._store(event, partial)
        finally:
            # This is pynetdicom's own C-STORE path, taken only by an
            # association not handed to the receive loop. pynetdicom removes
            # the file after an SCP's handler but not after an SCU's: do it
            # here for both.
            if partial is not None:
                partial.close()
                Path(partial.name).unlink(missing_ok=True)

    def _store(self, event: evt.Event, partial: object) -> int:
        """Move the received file into the tree; return the status to answer."""
        sop_uid = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "")
        error = partial.error if isinstance(partial, IncomingFile) else None
        return self.store_received(
            event.assoc, sop_uid, lambda: event.dataset_path, error
        )

    def store_received(
        self,
        assoc: Association,
        sop_uid: str,
        received: Callable[[], Path],
        error: OSError | None = None,
        head: DataSetHead | None = None,
        size: int | None = None,
    ) -> int:
        """Store a data set that arrived whole; return the C-STORE status.

        ``received`` gives the file's path; ``error`` is why it could not be
        written, ``head`` its first bytes after the file meta, ``size`` the
        file's size, if known.
        """
        stats = self._stats.get(assoc)
        if error is not None:
            logger.warning("instance %s not stored: %s", sop_uid, error)
            return self._failed(stats, STORE_OUT_OF_RESOURCES)
        try:
            path = received()
            if size is None:
                size = path.stat().st_size
            stored = self.engine.store(path, _calling_aet(assoc), head)
        except InstanceRejected as exc:
            logger.warning("instance %s refused: %s", sop_uid, exc)
            return self._failed(stats, exc.status)
        except OSError as exc:
            # A full disk, a quota, a missing folder: the data set was fine.
            logger.error("instance %s not stored: %s", sop_uid, exc.strerror)
            return self._failed(stats, STORE_OUT_OF_RESOURCES)
        except Exception:  # noqa: BLE001 - a handler answers, it never raises
            logger.exception("instance %s not stored", sop_uid)
            return self._failed(stats, STORE_CANNOT_UNDERSTAND)
        if stored.duplicate:
            logger.info("instance %s received again; kept one copy", sop_uid)
        if stats is not None:
            stats.instances += 1
            stats.duplicates += stored.duplicate
            stats.bytes += size
        return STORE_SUCCESS

    def _failed(self, stats: AssociationStats | None, status: int) -> int:
        """Count a failed instance and return its status."""
        if stats is not None:
            stats.failures += 1
        return status

    def on_accepted(self, event: evt.Event) -> None:
        """Start counting what an association brings."""
        assoc = event.assoc
        peer = f"{assoc.requestor.address}:{assoc.requestor.port}"
        with self._lock:
            self._stats[assoc] = AssociationStats(peer, _calling_aet(assoc))

    def on_released(self, event: evt.Event) -> None:
        """Log a released association."""
        self._finish(event.assoc, "released")

    def on_aborted(self, event: evt.Event) -> None:
        """Log an aborted association and drop its unfinished instance."""
        _discard_partial(event.assoc)
        self._finish(event.assoc, "aborted")

    def on_closed(self, event: evt.Event) -> None:
        """Drop an unfinished instance of a connection that closed."""
        _discard_partial(event.assoc)
        self._finish(event.assoc, "closed")

    def _finish(self, assoc: Association, outcome: str) -> None:
        """Write the association's one INFO line, once."""
        with self._lock:
            stats = self._stats.pop(assoc, None)
        if stats is None:
            return
        seconds = time.monotonic() - stats.started
        logger.info(
            "association from %s (%s) %s: %d instances, %d duplicates, "
            "%d failed, %d bytes, %.2f s",
            stats.calling_aet,
            stats.peer,
            outcome,
            stats.instances,
            stats.duplicates,
            stats.failures,
            stats.bytes,
            seconds,
        )


def _calling_aet(assoc: Association) -> str:
    """Return the peer's AE title as text."""
    return str(assoc.requestor.ae_title).strip()


def _discard_partial(assoc: Association) -> None:
    """Delete the temporary file of an instance that was still arriving."""
    # NOTE: pynetdicom keeps the file of a data set in progress on its DIMSE
    # message and forgets it when the association ends; remove once pynetdicom
    # deletes it itself.
    message = getattr(assoc.dimse, "message", None)
    partial = getattr(message, "_data_set_file", None)
    if partial is None:
        return
    partial.close()
    Path(partial.name).unlink(missing_ok=True)
    message._data_set_file = None  # type: ignore[union-attr]
    logger.warning("association ended mid-instance; partial data discarded")
