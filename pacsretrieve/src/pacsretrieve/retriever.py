"""How each mode opens its association and asks for one job's instances.

``move`` and ``self`` send a C-MOVE to a destination (the listener, or our own
in-process SCP); ``get`` sends a C-GET and stores what comes back over the same
association through the shared storage engine. Both are
:class:`~pacscommon.requestor.DirectAE` associations: once pynetdicom has
negotiated one, the worker's own thread reads and writes it, through
:func:`~pacscommon.moves.send_c_move` or a
:class:`~pacscommon.retrievals.GetSession`.
"""

from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from pynetdicom import Association
from pynetdicom.presentation import PresentationContext

from pacscommon.arrivals import Receiver
from pacscommon.channel import LinkEnded
from pacscommon.errors import AssociationAborted
from pacscommon.network import (
    Peer,
    Timeouts,
    associate,
    make_ae,
    release,
)
from pacscommon.requestor import DirectAE, DirectAssociation
from pacscommon.retrievals import GetSession
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
# The largest PDU a C-GET association asks the PACS to send: fewer, larger
# PDUs cost fewer passes through the read loop.
GET_MAX_PDU = 1024 * 1024


@dataclass
class Retriever:
    """Open retrieve associations with the PACS and send one job over one."""

    peer: Peer
    timeouts: Timeouts
    destination: str | None  # the move destination; None for C-GET
    contexts: list[PresentationContext] = field(default_factory=list)
    roles: list[Any] = field(default_factory=list)
    receiver: Receiver | None = None  # where C-GET's instances are stored
    _sessions: "WeakKeyDictionary[Association, GetSession]" = field(
        default_factory=WeakKeyDictionary, repr=False
    )

    def open(self) -> Association:
        """Open an association ready for this mode's requests."""
        if self.receiver is not None:
            return self._open_get(self.receiver)
        return self._open_move()

    def _open_move(self) -> Association:
        """Open a C-MOVE association whose responses are read on its channel."""
        ae = make_ae(self.peer.calling_aet, self.timeouts, DirectAE)
        ae.add_requested_context(MOVE_MODEL)
        return associate(ae, self.peer)

    def _open_get(self, receiver: Receiver) -> Association:
        """Open a C-GET association and the session that reads it."""
        ae = make_ae(self.peer.calling_aet, self.timeouts, DirectAE)
        assoc = associate(
            ae,
            self.peer,
            contexts=self.contexts,
            ext_neg=self.roles,
            max_pdu=GET_MAX_PDU,
        )
        direct: DirectAssociation = assoc  # type: ignore[assignment]
        try:
            session = GetSession(direct, receiver, self.timeouts.dimse)
        except LinkEnded as exc:
            release(assoc)
            raise AssociationAborted(
                f"association with {self.peer} ended as it opened ({exc}); check "
                "that the PACS offers C-GET and the storage SOP classes"
            ) from exc
        self._sessions[assoc] = session
        return assoc

    def send(self, assoc: Association, job: RetrieveJob) -> MoveOutcome:
        """Ask for the job's instances; return what the PACS reported."""
        series = job.series_uids[0] if job.level == SERIES_LEVEL else None
        identifier = retrieve_identifier(job.level, job.StudyInstanceUID, series)
        verb = "C-GET" if self.destination is None else "C-MOVE"
        what = f"{verb} of {job.describe()}"
        if self.destination is None:
            return send_get(self._sessions[assoc], identifier, what, self.peer)
        return send_move(
            assoc, identifier, self.destination, what, self.peer, self.timeouts.dimse
        )
