"""C-GET as a service class user, read and written in the caller's thread.

PS3.4 C.4.3: the PACS answers a C-GET-RQ by storing each instance back over
the same association, as C-STORE-RQs on the storage contexts we proposed with
the SCP role, and by C-GET-RSPs: pending ones that count the sub-operations,
then a final one. pynetdicom negotiates the association (a
:class:`~pacscommon.requestor.DirectAE`'s, so that its threads step aside); a
:class:`GetSession` then sends the request through the association's
:class:`~pacscommon.channel.Channel` and reads PDUs with a
:class:`~pacscommon.link.Link`: each C-STORE's data set is streamed into the
storage engine by :class:`~pacscommon.arrivals.Arrivals` and answered with the
engine's status, and each C-GET-RSP is handed to the caller the way
pynetdicom's ``send_c_get`` hands it, so the caller reads both alike.
"""

import logging
import threading
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.presentation import PresentationContext

from pacscommon import commands as cmd
from pacscommon.arrivals import Arrivals, Implementation, Receiver
from pacscommon.channel import LinkEnded
from pacscommon.errors import OperationError
from pacscommon.link import POLL_SECONDS, CommandParts, Ended, Link, Pdv, PdvReader
from pacscommon.moves import RetrieveStatus, retrieve_status
from pacscommon.queries import decoded, encoded
from pacscommon.requestor import DirectAssociation
from pacscommon.storage import STORE_CANNOT_UNDERSTAND

logger = logging.getLogger(__name__)

# PS3.7 E.1: command fields
C_GET_RQ = 0x0010
C_GET_RSP = C_GET_RQ | cmd.RESPONSE_BIT
# PS3.4 C.4.3.1.4: the status after which more responses follow
_PENDING = 0xFF00
# A response's identifier lists failed UIDs at most; anything near this is not.
_MAX_IDENTIFIER_BYTES = 16 * 1024 * 1024

Response = tuple[RetrieveStatus, Dataset | None]


class _Answer:
    """A C-GET-RSP being read: its command set, then its identifier, if any."""

    def __init__(self, context_id: int, command: dict[int, bytes]) -> None:
        self.context_id = context_id
        self.command = command
        self.identifier = bytearray()

    def add(self, piece: memoryview) -> None:
        """Keep a piece of the identifier."""
        self.identifier += piece
        if len(self.identifier) > _MAX_IDENTIFIER_BYTES:
            raise cmd.ProtocolError("C-GET-RSP identifier too long")


class GetSession:
    """Send C-GETs over one established association and serve their C-STOREs."""

    def __init__(
        self, assoc: DirectAssociation, receiver: Receiver, timeout: float
    ) -> None:
        self.channel = assoc.channel()
        self.timeout = timeout
        # The link's own stop event: nothing else stops a C-GET from outside.
        self.link = Link(self.channel.sock, threading.Event(), timeout)
        self.pdvs = PdvReader(self.link)
        self.contexts = {cx.context_id: cx for cx in assoc.accepted_contexts}
        own = Implementation(
            str(assoc.requestor.implementation_class_uid),
            str(assoc.requestor.implementation_version_name or ""),
        )
        self.arrivals = Arrivals(assoc, receiver, own)
        self.command = CommandParts()
        self.answer: _Answer | None = None

    def send_c_get(self, identifier: Dataset, sop_class: str) -> Iterator[Response]:
        """Send one C-GET-RQ; yield (status, identifier) of each response.

        The status is a data set with ``Status`` and the counts; an empty one
        means that the association ended first (aborted, dropped, or no answer
        within the timeout), as with pynetdicom.
        """
        context = self._context(sop_class)
        context_id = int(context.context_id or 0)
        syntax = UID(str(context.transfer_syntax[0]))
        message_id = self.channel.next_message_id()
        finished = False
        try:
            request = cmd.encode_request(
                C_GET_RQ, message_id, sop_class, cmd.PRIORITY_LOW
            )
            data = encoded(identifier, syntax)
            self.channel.send(context_id, request, data, self.timeout)
            while not finished:
                status, answer = self._response(context_id, message_id, syntax)
                finished = status.Status != _PENDING
                yield status, answer
        except LinkEnded as ended:
            finished = True
            logger.warning("C-GET ended: %s", ended)
            yield RetrieveStatus(), None
        finally:
            self._close(finished)

    def _context(self, sop_class: str) -> PresentationContext:
        """Return the accepted context of the retrieve model ``sop_class``."""
        for context in self.contexts.values():
            if context.abstract_syntax == sop_class:
                return context
        raise OperationError(
            f"the PACS accepted no presentation context for C-GET ({sop_class}); "
            "check that it offers Study Root C-GET, or use --mode move"
        )

    def _close(self, finished: bool) -> None:
        """Drop files left open; abort an association left mid-C-GET."""
        self.arrivals.drop()
        if not finished:
            self.channel.abort()

    def _response(self, context_id: int, message_id: int, syntax: UID) -> Response:
        """Serve C-STOREs until the next C-GET-RSP is whole; return it."""
        self._poll()
        try:
            while True:
                answer = self._next_message()
                if answer is not None:
                    return _read_answer(answer, context_id, message_id, syntax)
        except Ended as ended:
            # The connection is gone or silent: abort, and say how it ended.
            self.channel.abort()
            raise LinkEnded(ended.outcome, str(ended)) from None
        except cmd.ProtocolError as exc:
            raise self.channel.refuse(str(exc)) from None

    def _next_message(self) -> _Answer | None:
        """Read one PDV; return a C-GET-RSP once it is whole."""
        pdv = self.pdvs.next()
        if pdv.pdu_type != cmd.PDU_P_DATA:
            self._association_pdu(pdv)
        if pdv.context_id not in self.contexts:
            raise cmd.ProtocolError(f"PDV on presentation context {pdv.context_id}")
        last = bool(pdv.control & cmd.PDV_LAST)
        if pdv.control & cmd.PDV_COMMAND:
            return self._command_fragment(pdv, last)
        return self._data_fragment(pdv, last)

    def _association_pdu(self, pdv: Pdv) -> None:
        """Raise for a PDU that ends the association in the middle of a C-GET."""
        if pdv.pdu_type == cmd.PDU_ABORT and pdv.size == 4:
            body = self.link.take(4)
            raise Ended(
                "aborted",
                f"the PACS aborted the association (source {body[2]}, "
                f"reason {body[3]})",
            )
        raise cmd.ProtocolError(f"unexpected PDU type {pdv.pdu_type:#04x}")

    def _command_fragment(self, pdv: Pdv, last: bool) -> _Answer | None:
        """Collect a fragment of a command set; act on it when whole."""
        if self.arrivals.current is not None or self.answer is not None:
            raise cmd.ProtocolError("a command began inside a data set")
        command = self.command.add(self.link.take(pdv.size), last)
        if command is None:
            return None
        has_data = cmd.command_us(command, cmd.CommandDataSetType) != cmd.NO_DATA_SET
        field = cmd.command_us(command, cmd.CommandField)
        if field == C_GET_RSP:
            answer = _Answer(pdv.context_id, command)
            if not has_data:
                return answer
            self.answer = answer
            return None
        if field != cmd.C_STORE_RQ:
            raise cmd.ProtocolError(f"command {field:#06x} during a C-GET")
        if has_data:
            syntax = str(self.contexts[pdv.context_id].transfer_syntax[0])
            self.arrivals.start(pdv.context_id, command, syntax)
            return None
        self._answer_store(pdv.context_id, command, STORE_CANNOT_UNDERSTAND)
        return None

    def _data_fragment(self, pdv: Pdv, last: bool) -> _Answer | None:
        """Stream a fragment of a data set to its file or to the response."""
        answer = self.answer
        if answer is not None and answer.context_id == pdv.context_id:
            self.link.pour(pdv.size, answer.add)
            if last:
                self.answer = None
                return answer
            return None
        arrival = self.arrivals.current
        if arrival is None or arrival.context_id != pdv.context_id:
            raise cmd.ProtocolError("a data set without its command")
        self.link.pour(pdv.size, arrival.write)
        if last:
            self._store()
        return None

    def _store(self) -> None:
        """Store a data set that arrived whole and answer its C-STORE."""
        arrival, status = self.arrivals.finish()
        rsp = cmd.encode_response(
            cmd.C_STORE_RQ,
            arrival.message_id,
            status,
            arrival.sop_class,
            arrival.sop_instance,
        )
        self._send(arrival.context_id, rsp)
        self.arrivals.open_spare()

    def _answer_store(
        self, context_id: int, command: dict[int, bytes], status: int
    ) -> None:
        """Answer a C-STORE-RQ that came without a data set."""
        rsp = cmd.encode_response(
            cmd.C_STORE_RQ,
            cmd.command_us(command, cmd.MessageID),
            status,
            cmd.command_uid(command, cmd.AffectedSOPClassUID),
            cmd.command_uid(command, cmd.AffectedSOPInstanceUID),
        )
        self._send(context_id, rsp)

    def _send(self, context_id: int, command: bytes) -> None:
        """Send a command set; then go back to polling reads."""
        self.channel.send(context_id, command, None, self.timeout)
        self._poll()

    def _poll(self) -> None:
        """Make the socket's reads wake every POLL_SECONDS, as the link expects."""
        # The channel skips settimeout() when it believes the socket already has
        # about the right timeout: keep its record of it true.
        if self.channel.sock_timeout != POLL_SECONDS:
            self.channel.sock.settimeout(POLL_SECONDS)
            self.channel.sock_timeout = POLL_SECONDS


def _read_answer(
    answer: _Answer, context_id: int, message_id: int, syntax: UID
) -> Response:
    """Return a C-GET-RSP's status data set and identifier; check what it answers."""
    command = answer.command
    answered = cmd.command_us(command, cmd.MessageIDBeingRespondedTo)
    if answered != message_id or answer.context_id != context_id:
        raise cmd.ProtocolError(
            f"a C-GET-RSP to message {answered} on context {answer.context_id} "
            f"where one to {message_id} was due"
        )
    status = retrieve_status(command)
    if not answer.identifier:
        return status, None
    return status, decoded(bytes(answer.identifier), syntax, "C-GET-RSP identifier")
