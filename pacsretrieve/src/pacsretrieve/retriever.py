"""How each mode opens its association and asks for one job's instances.

``move`` and ``self`` send a C-MOVE to a destination (the listener, or our own
in-process SCP); ``get`` sends a C-GET and stores what comes back over the same
association through the shared storage engine's C-STORE handler.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import Association, evt
from pynetdicom.presentation import PresentationContext

from pacscommon.incoming import IncomingFolder, attach
from pacscommon.network import (
    Peer,
    Timeouts,
    associate,
    keep_responses_for_requests,
    make_ae,
)
from pacsretrieve.jobs import SERIES_LEVEL, RetrieveJob
from pacsretrieve.move import (
    MOVE_MODEL,
    MoveOutcome,
    retrieve_identifier,
    send_get,
    send_move,
)

MODE_MOVE = "move"
MODE_GET = "get"
MODE_SELF = "self"
MODES = (MODE_MOVE, MODE_GET, MODE_SELF)


@dataclass
class Retriever:
    """Open retrieve associations with the PACS and send one job over one."""

    peer: Peer
    timeouts: Timeouts
    destination: str | None  # the move destination; None for C-GET
    contexts: list[PresentationContext] = field(default_factory=list)
    roles: list[Any] = field(default_factory=list)
    store_handler: Callable[[evt.Event], int] | None = None
    incoming: IncomingFolder | None = None  # where C-GET's data sets stream to

    def open(self) -> Association:
        """Open an association ready for this mode's requests."""
        ae = make_ae(self.peer.calling_aet, self.timeouts)
        if self.incoming is not None:
            attach(ae, self.incoming)
        handlers = []
        if self.destination is not None:
            ae.add_requested_context(MOVE_MODEL)
        if self.store_handler is not None:
            handlers.append((evt.EVT_C_STORE, self.store_handler))
        assoc = associate(
            ae,
            self.peer,
            contexts=self.contexts or None,
            ext_neg=self.roles or None,
            evt_handlers=handlers,
        )
        keep_responses_for_requests(assoc)
        return assoc

    def send(self, assoc: Association, job: RetrieveJob) -> MoveOutcome:
        """Ask for the job's instances; return what the PACS reported."""
        series = job.series_uids[0] if job.level == SERIES_LEVEL else None
        identifier = retrieve_identifier(job.level, job.StudyInstanceUID, series)
        verb = "C-GET" if self.destination is None else "C-MOVE"
        what = f"{verb} of {job.describe()}"
        if self.destination is None:
            return send_get(assoc, identifier, what, self.peer)
        return send_move(assoc, identifier, self.destination, what, self.peer)
