"""The receive loop of an established storage association.

pynetdicom negotiates each association (titles, contexts, roles, limits, TLS).
Its message layer then hands every PDU between two threads that poll each other
every millisecond and builds general datasets for each command, which costs far
more per instance than the bytes do (bench/RESULTS.md). So once the
A-ASSOCIATE-AC is on its way, the connection is handed to :class:`ReceiveLoop`,
which reads PDUs in the association's own thread, streams each data set from
the socket buffer into its file, and answers C-STORE and C-ECHO with command
sets encoded by :mod:`pacscommon.commands`. The association's events
(released, aborted, connection closed) still fire, so the storage handlers see
one life cycle whichever path ran.
"""

import logging
import socket
import threading
from dataclasses import dataclass
from typing import cast

from pynetdicom import Association

from pacscommon import commands as cmd
from pacscommon.arrivals import HEAD_BYTES, Arrivals, Implementation, Receiver
from pacscommon.link import POLL_SECONDS, CommandParts, Ended, Link, Pdv, PdvReader
from pacscommon.storage import STORE_CANNOT_UNDERSTAND

logger = logging.getLogger(__name__)

# An association PDU (release, abort) is a few bytes; anything near this is not.
_MAX_SHORT_PDU_BYTES = 64 * 1024
_ECHO_SUCCESS = 0x0000

__all__ = ["HEAD_BYTES", "ReceiveLoop", "Receiver"]


@dataclass
class _Messages:
    """Where the loop is within the DIMSE messages of the association."""

    command: CommandParts
    # A data set that follows a command this SCP does not serve.
    dropping: bool = False


class ReceiveLoop:
    """Serve one established association of a storage SCP until it ends."""

    def __init__(self, assoc: Association, receiver: Receiver, stop: threading.Event):
        self.assoc = assoc
        self.receiver = receiver
        self.sock = cast(socket.socket, assoc.dul.socket.socket)  # type: ignore[union-attr]
        self.link = Link(self.sock, stop, assoc.network_timeout)
        self.pdvs = PdvReader(self.link)
        self.contexts = {cx.context_id: cx for cx in assoc.accepted_contexts}
        self.peer_max_pdu = int(assoc.requestor.maximum_length or 0)
        self.state = _Messages(CommandParts())
        own = Implementation(
            str(assoc.acceptor.implementation_class_uid),
            str(assoc.acceptor.implementation_version_name or ""),
        )
        self.arrivals = Arrivals(assoc, receiver, own)

    def run(self) -> str:
        """Serve the association; return "released", "aborted" or "closed"."""
        self.sock.settimeout(POLL_SECONDS)
        try:
            while True:
                pdv = self.pdvs.next()
                if pdv.pdu_type != cmd.PDU_P_DATA:
                    return self._association_pdu(pdv.pdu_type, pdv.size)
                self._pdv(pdv)
        except Ended as ended:
            if ended.outcome == "aborted":
                logger.warning("association from %s: %s", _peer(self.assoc), ended)
                self._send(cmd.encode_abort(cmd.ABORT_REASON_NOT_SPECIFIED, 0x00))
            return ended.outcome
        except cmd.ProtocolError as exc:
            logger.warning("association from %s aborted: %s", _peer(self.assoc), exc)
            self._send(cmd.encode_abort(cmd.ABORT_REASON_INVALID_PARAMETER))
            return "aborted"
        except Exception:  # noqa: BLE001 - the loop must end the association cleanly
            logger.exception("association from %s aborted", _peer(self.assoc))
            self._send(cmd.encode_abort(cmd.ABORT_REASON_NOT_SPECIFIED))
            return "aborted"
        finally:
            self._drop_partial()

    def _association_pdu(self, pdu_type: int, length: int) -> str:
        """Answer a PDU that ends the association."""
        if length > _MAX_SHORT_PDU_BYTES:
            raise cmd.ProtocolError(f"PDU of type {pdu_type:#04x} and length {length}")
        self.link.take(length)
        if pdu_type == cmd.PDU_RELEASE_RQ:
            self._drop_partial()
            self._send(cmd.encode_release_rp())
            return "released"
        if pdu_type == cmd.PDU_ABORT:
            return "aborted"
        logger.warning(
            "association from %s aborted: unexpected PDU type %#04x",
            _peer(self.assoc),
            pdu_type,
        )
        known = pdu_type in (0x01, 0x02, 0x03, cmd.PDU_RELEASE_RP)
        reason = (
            cmd.ABORT_REASON_UNEXPECTED_PDU
            if known
            else cmd.ABORT_REASON_UNRECOGNIZED_PDU
        )
        self._send(cmd.encode_abort(reason))
        return "aborted"

    def _pdv(self, pdv: Pdv) -> None:
        """Read the data of one PDV."""
        context_id, size = pdv.context_id, pdv.size
        if context_id not in self.contexts:
            raise cmd.ProtocolError(f"PDV on presentation context {context_id}")
        last = bool(pdv.control & cmd.PDV_LAST)
        if pdv.control & cmd.PDV_COMMAND:
            self._command_fragment(context_id, size, last)
        else:
            self._data_fragment(context_id, size, last)

    def _command_fragment(self, context_id: int, size: int, last: bool) -> None:
        """Collect a fragment of a command set; act on it when whole."""
        state = self.state
        if self.arrivals.current is not None or state.dropping:
            raise cmd.ProtocolError("a command began inside a data set")
        command = state.command.add(self.link.take(size), last)
        if command is not None:
            self._command(context_id, command)

    def _command(self, context_id: int, command: dict[int, bytes]) -> None:
        """Start serving a command."""
        field_ = cmd.command_us(command, cmd.CommandField)
        if field_ == cmd.C_CANCEL_RQ:
            return
        message_id = cmd.command_us(command, cmd.MessageID)
        has_data = cmd.command_us(command, cmd.CommandDataSetType) != cmd.NO_DATA_SET
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "received command %#06x, message %d, context %d, SOP instance %s",
                field_,
                message_id,
                context_id,
                cmd.command_uid(command, cmd.AffectedSOPInstanceUID),
            )
        if field_ == cmd.C_STORE_RQ and has_data:
            self._start_arrival(context_id, command)
            return
        if field_ == cmd.C_ECHO_RQ:
            status = _ECHO_SUCCESS
        elif field_ == cmd.C_STORE_RQ:
            status = STORE_CANNOT_UNDERSTAND
        else:
            status = cmd.UNRECOGNIZED_OPERATION
        self.state.dropping = has_data
        sop_class = cmd.command_uid(command, cmd.AffectedSOPClassUID)
        self._respond(context_id, field_, message_id, status, sop_class)

    def _start_arrival(self, context_id: int, command: dict[int, bytes]) -> None:
        """Open the file of a C-STORE's data set."""
        transfer_syntax = str(self.contexts[context_id].transfer_syntax[0])
        self.arrivals.start(context_id, command, transfer_syntax)

    def _data_fragment(self, context_id: int, size: int, last: bool) -> None:
        """Stream a fragment of a data set to its file; store it when whole."""
        state = self.state
        if state.dropping:
            self.link.pour(size, _ignore)
            state.dropping = not last
            return
        arrival = self.arrivals.current
        if arrival is None or arrival.context_id != context_id:
            raise cmd.ProtocolError("a data set without its C-STORE command")
        self.link.pour(size, arrival.write)
        if last:
            self._store()

    def _store(self) -> None:
        """Store a data set that arrived whole and answer its C-STORE."""
        arrival, status = self.arrivals.finish()
        self._respond(
            arrival.context_id,
            cmd.C_STORE_RQ,
            arrival.message_id,
            status,
            arrival.sop_class,
            arrival.sop_instance,
        )
        self.arrivals.open_spare()

    def _respond(
        self,
        context_id: int,
        command_field: int,
        message_id: int,
        status: int,
        sop_class: str,
        sop_instance: str = "",
    ) -> None:
        """Send the response to a request."""
        rsp = cmd.encode_response(
            command_field, message_id, status, sop_class, sop_instance
        )
        if not self._send(cmd.encode_command_pdus(context_id, rsp, self.peer_max_pdu)):
            raise Ended("closed", "connection lost while answering")

    def _send(self, data: bytes) -> bool:
        """Send bytes to the peer; return False if the connection is gone."""
        try:
            # An answer fits in the socket's buffer but for a peer that has
            # stopped reading: one send, no change of the socket's timeout.
            sent = self.sock.send(data)
            if sent == len(data):
                return True
        except (BlockingIOError, TimeoutError):
            sent = 0
        except OSError:
            return False
        # A blocked peer gets the network timeout, not the polling interval.
        self.sock.settimeout(self.assoc.network_timeout)
        try:
            self.sock.sendall(data[sent:])
        except OSError:
            return False
        finally:
            self.sock.settimeout(POLL_SECONDS)
        return True

    def _drop_partial(self) -> None:
        """Remove the file of a data set that will never be whole, and the spare."""
        self.arrivals.drop()


def _ignore(piece: memoryview) -> None:
    """Drop a piece of a data set nobody asked for."""


def _peer(assoc: Association) -> str:
    """Return the peer's AE title, host and port for a log line."""
    requestor = assoc.requestor
    return f"{str(requestor.ae_title).strip()} ({requestor.address}:{requestor.port})"
