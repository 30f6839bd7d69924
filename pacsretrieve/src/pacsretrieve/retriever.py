"""How each mode opens its association and asks for one job's instances.

``move`` and ``self`` send a C-MOVE to a destination (the listener, or our own
in-process SCP), over an association this package negotiates itself
(:mod:`pacscommon.requested`: no pynetdicom, no pydicom); ``get`` sends a C-GET
and stores what comes back over the same association through the shared
storage engine, over a :class:`~pacscommon.requestor.DirectAE` association:
once pynetdicom has negotiated it, the worker's own thread reads and writes it
through a :class:`~pacscommon.retrievals.GetSession`.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

from pacscommon.peers import Association, Peer, Timeouts, release
from pacscommon.requested import RequestedAssociation, request_association
from pacsretrieve.jobs import SERIES_LEVEL, RetrieveJob
from pacsretrieve.move import (
    MOVE_MODEL,
    MoveOutcome,
    RetrieveKeys,
    retrieve_identifier,
    send_get,
    send_move,
)

if TYPE_CHECKING:
    from pacscommon.arrivals import Receiver
    from pacscommon.retrievals import GetSession

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
    contexts: list[Any] = field(default_factory=list)  # C-GET's
    roles: list[Any] = field(default_factory=list)
    receiver: "Receiver | None" = None  # where C-GET's instances are stored
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
        return request_association(self.peer, self.timeouts, [MOVE_MODEL])

    def _open_get(self, receiver: "Receiver") -> Association:
        """Open a C-GET association and the session that reads it."""
        # pynetdicom and pydicom are loaded by the C-GET path alone.
        from pacscommon.channel import LinkEnded
        from pacscommon.errors import AssociationAborted
        from pacscommon.network import associate, make_ae
        from pacscommon.requestor import DirectAE, DirectAssociation
        from pacscommon.retrievals import GetSession

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
        verb = "C-GET" if self.destination is None else "C-MOVE"
        what = f"{verb} of {job.describe()}"
        if self.destination is None:
            identifier = retrieve_identifier(job.level, job.StudyInstanceUID, series)
            return send_get(self._sessions[assoc], identifier, what, self.peer)
        keys = RetrieveKeys(job.level, job.StudyInstanceUID, series)
        return send_move(
            cast(RequestedAssociation, assoc),
            keys,
            self.destination,
            what,
            self.peer,
            self.timeouts.dimse,
        )
