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
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from pynetdicom import Association

from pacscommon import commands as cmd
from pacscommon.filemeta import FileMetaFields, file_meta_bytes
from pacscommon.handlers import StorageHandlers
from pacscommon.headscan import DataSetHead
from pacscommon.incoming import IncomingFile, IncomingFolder
from pacscommon.link import POLL_SECONDS, Ended, Link
from pacscommon.storage import (
    STORE_CANNOT_UNDERSTAND,
    STORE_OUT_OF_RESOURCES,
    STORE_SUCCESS,
)

logger = logging.getLogger(__name__)

# How much of each data set is kept in memory for the layout's attributes.
HEAD_BYTES = 16 * 1024
# A command set is a few hundred bytes; anything near this is not one.
_MAX_COMMAND_BYTES = 64 * 1024

_ECHO_SUCCESS = 0x0000
# PS3.10 7.1: a Part-10 file opens with 128 bytes of preamble and "DICM".
_PREAMBLE = b"\x00" * 128 + b"DICM"


@dataclass
class Receiver:
    """Where an SCP's received instances go: its handlers and incoming folder."""

    handlers: StorageHandlers
    incoming: IncomingFolder


class _Arrival:
    """A C-STORE whose data set is arriving."""

    def __init__(
        self,
        context_id: int,
        command: dict[int, bytes],
        incoming: IncomingFolder,
        spare: IncomingFile | None,
    ) -> None:
        self.context_id = context_id
        self.message_id = cmd.command_us(command, cmd.MessageID)
        self.sop_class = cmd.command_uid(command, cmd.AffectedSOPClassUID)
        self.sop_instance = cmd.command_uid(command, cmd.AffectedSOPInstanceUID)
        self.head = bytearray()
        self.size = 0
        self.transfer_syntax = ""
        self.error: OSError | None = None
        self.file: IncomingFile | None = spare
        if spare is not None:
            # Opened before the command came: the reserve is checked now.
            spare.check_reserve()
            return
        try:
            self.file = incoming.open()
        except OSError as exc:
            self.error = exc

    def write(self, piece: memoryview) -> None:
        """Write a piece of the data set, keeping its first bytes."""
        if len(self.head) < HEAD_BYTES:
            self.head += piece[: HEAD_BYTES - len(self.head)]
        self.size += len(piece)
        if self.file is not None:
            self.file.write(piece)

    def close(self) -> OSError | None:
        """Close the file; return why it could not be written, if so."""
        if self.file is not None:
            self.file.close()
            return self.file.error
        return self.error

    def discard(self) -> None:
        """Close and remove the file."""
        if self.file is not None:
            self.file.close()
            Path(self.file.name).unlink(missing_ok=True)


@dataclass
class _Messages:
    """Where the loop is within the DIMSE messages of the association."""

    command: list[bytes] = field(default_factory=list)
    arrival: _Arrival | None = None
    # A file opened ahead for the next data set, while the sender prepares it.
    spare: IncomingFile | None = None
    # A data set that follows a command this SCP does not serve.
    dropping: bool = False


class ReceiveLoop:
    """Serve one established association of a storage SCP until it ends."""

    def __init__(self, assoc: Association, receiver: Receiver, stop: threading.Event):
        self.assoc = assoc
        self.receiver = receiver
        self.sock = cast(socket.socket, assoc.dul.socket.socket)  # type: ignore[union-attr]
        self.link = Link(self.sock, stop, assoc.network_timeout)
        self.contexts = {cx.context_id: cx for cx in assoc.accepted_contexts}
        self.peer_max_pdu = int(assoc.requestor.maximum_length or 0)
        self.state = _Messages()

    def run(self) -> str:
        """Serve the association; return "released", "aborted" or "closed"."""
        self.sock.settimeout(POLL_SECONDS)
        try:
            while True:
                pdu_type, length = cmd.decode_pdu_header(self.link.take(6))
                if pdu_type != cmd.PDU_P_DATA:
                    return self._association_pdu(pdu_type, length)
                self._p_data(length)
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
        if length > _MAX_COMMAND_BYTES:
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

    def _p_data(self, length: int) -> None:
        """Read the PDVs of one P-DATA-TF PDU."""
        left = length
        while left:
            if left < 6:
                raise cmd.ProtocolError("P-DATA-TF ends inside a PDV header")
            size, context_id, control = cmd.decode_pdv_header(self.link.take(6))
            left -= 6 + size
            if left < 0:
                raise cmd.ProtocolError("PDV runs past the end of its PDU")
            if context_id not in self.contexts:
                raise cmd.ProtocolError(f"PDV on presentation context {context_id}")
            last = bool(control & cmd.PDV_LAST)
            if control & cmd.PDV_COMMAND:
                self._command_fragment(context_id, size, last)
            else:
                self._data_fragment(context_id, size, last)

    def _command_fragment(self, context_id: int, size: int, last: bool) -> None:
        """Collect a fragment of a command set; act on it when whole."""
        state = self.state
        if state.arrival is not None or state.dropping:
            raise cmd.ProtocolError("a command began inside a data set")
        state.command.append(self.link.take(size))
        if sum(len(part) for part in state.command) > _MAX_COMMAND_BYTES:
            raise cmd.ProtocolError("command set too long")
        if last:
            command = cmd.decode_command(b"".join(state.command))
            state.command.clear()
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
        """Open the file of a C-STORE's data set and write its file meta."""
        spare, self.state.spare = self.state.spare, None
        arrival = _Arrival(context_id, command, self.receiver.incoming, spare)
        self.state.arrival = arrival
        transfer_syntax = str(self.contexts[context_id].transfer_syntax[0])
        arrival.transfer_syntax = transfer_syntax
        if arrival.file is not None:
            meta = FileMetaFields(
                arrival.sop_class,
                arrival.sop_instance,
                transfer_syntax,
                str(self.assoc.acceptor.implementation_class_uid),
                str(self.assoc.acceptor.implementation_version_name or ""),
            )
            arrival.file.write(_PREAMBLE + file_meta_bytes(meta))

    def _data_fragment(self, context_id: int, size: int, last: bool) -> None:
        """Stream a fragment of a data set to its file; store it when whole."""
        state = self.state
        if state.dropping:
            self.link.pour(size, _ignore)
            state.dropping = not last
            return
        arrival = state.arrival
        if arrival is None or arrival.context_id != context_id:
            raise cmd.ProtocolError("a data set without its C-STORE command")
        self.link.pour(size, arrival.write)
        if last:
            state.arrival = None
            self._store(arrival)

    def _store(self, arrival: _Arrival) -> None:
        """Store a data set that arrived whole and answer its C-STORE."""
        error = arrival.close()
        if arrival.file is None:
            status = STORE_OUT_OF_RESOURCES
            logger.warning("instance %s not stored: %s", arrival.sop_instance, error)
        else:
            name = arrival.file.name
            head = DataSetHead(
                bytes(arrival.head),
                arrival.transfer_syntax,
                whole=arrival.size == len(arrival.head),
            )
            status = self.receiver.handlers.store_received(
                self.assoc, arrival.sop_instance, lambda: Path(name), error, head
            )
        if status != STORE_SUCCESS:
            arrival.discard()
        self._respond(
            arrival.context_id,
            cmd.C_STORE_RQ,
            arrival.message_id,
            status,
            arrival.sop_class,
            arrival.sop_instance,
        )
        # Creating a file costs about as much as receiving a small data set
        # (bench/RESULTS.md): do it while the sender reads its next one.
        self.state.spare = self._open_spare()

    def _open_spare(self) -> IncomingFile | None:
        """Open the file for the next data set, if the disk lets us."""
        try:
            return self.receiver.incoming.open(check_reserve=False)
        except OSError:
            return None

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
        # A blocked peer gets the network timeout, not the polling interval.
        self.sock.settimeout(self.assoc.network_timeout)
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        finally:
            self.sock.settimeout(POLL_SECONDS)
        return True

    def _drop_partial(self) -> None:
        """Remove the file of a data set that will never be whole, and the spare."""
        spare, self.state.spare = self.state.spare, None
        if spare is not None:
            spare.close()
            Path(spare.name).unlink(missing_ok=True)
        arrival = self.state.arrival
        if arrival is not None:
            self.state.arrival = None
            arrival.discard()
            logger.warning("association ended mid-instance; partial data discarded")


def _ignore(piece: memoryview) -> None:
    """Drop a piece of a data set nobody asked for."""


def _peer(assoc: Association) -> str:
    """Return the peer's AE title, host and port for a log line."""
    requestor = assoc.requestor
    return f"{str(requestor.ae_title).strip()} ({requestor.address}:{requestor.port})"
