"""Whole DIMSE messages over an established association's socket, by hand.

A :class:`Channel` is what a requestor's thread uses once pynetdicom has
negotiated the association and stepped aside (:mod:`pacscommon.requestor`): it
writes each request as P-DATA-TF PDUs within the peer's maximum length, reads
PDUs until a message is whole, and ends the association itself (A-RELEASE,
A-ABORT). Every way the association can end while a message is awaited raises
one exception, :class:`LinkEnded`, after the connection has been closed; its
``outcome`` says how it ended.
"""

import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pacscommon import commands as cmd

logger = logging.getLogger(__name__)

# How an association ended.
RELEASED = "released"
ABORTED = "aborted"  # by an A-ABORT, ours or the peer's
CLOSED = "closed"  # the connection dropped without an A-ABORT
TIMED_OUT = "timed out"  # no whole message in time; we aborted
REFUSED = "refused"  # the peer broke the protocol; we aborted

# Reads: a few PDUs of a typical peer at a time.
_BUFFER_BYTES = 256 * 1024
# An A-ABORT, A-RELEASE-RQ or A-RELEASE-RP has a 4-byte body.
_SHORT_PDU_BYTES = 4
# A peer may send P-DATA-TF PDUs longer than we asked for; up to this is read.
_MAX_P_DATA_BYTES = 16 * 1024 * 1024


class LinkEnded(Exception):
    """The association ended; ``outcome`` says how, the message says more."""

    def __init__(self, outcome: str, detail: str = "") -> None:
        super().__init__(detail or outcome)
        self.outcome = outcome


@dataclass(frozen=True)
class Message:
    """One DIMSE message: its context, command set and data set, if any."""

    context_id: int
    command: dict[int, bytes]
    data: bytes | None


class Channel:
    """Send and receive whole DIMSE messages on one association's socket."""

    def __init__(
        self,
        sock: socket.socket,
        peer_max_pdu: int,
        own_max_pdu: int,
        on_end: Callable[[str], None],
    ) -> None:
        self.sock = sock
        self.peer_max_pdu = peer_max_pdu
        self.own_max_pdu = own_max_pdu
        self.on_end = on_end
        self.ended = ""
        self.message_id = 0
        self.buf = bytearray(_BUFFER_BYTES)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0
        self.pdvs: deque[tuple[int, int, bytes]] = deque()
        self.sock_timeout = -1.0

    def next_message_id(self) -> int:
        """Return a message ID not used by the last 65535 requests."""
        self.message_id = self.message_id % 0xFFFF + 1
        return self.message_id

    def send(
        self, context_id: int, command: bytes, data: bytes | None, timeout: float
    ) -> None:
        """Send a message: its command set, then its data set, in one write."""
        pdus = cmd.encode_command_pdus(context_id, command, self.peer_max_pdu)
        if data is not None:
            pdus += cmd.encode_data_pdus(context_id, data, self.peer_max_pdu)
        self._send(pdus, timeout)

    def receive(self, timeout: float) -> Message:
        """Return the next whole message; wait at most ``timeout`` seconds for it."""
        self._check_open()
        deadline = time.monotonic() + timeout
        try:
            return self._message(deadline)
        except cmd.ProtocolError as exc:
            raise self.refuse(str(exc)) from None

    def receive_response(
        self, name: str, field: int, context_id: int, message_id: int, timeout: float
    ) -> Message:
        """Return the next message, which must be the ``name`` answering a request.

        ``field`` is its command field, ``message_id`` the request's. Anything
        else breaks the protocol: the association is aborted and
        :class:`LinkEnded` raised.
        """
        message = self.receive(timeout)
        try:
            got = cmd.command_us(message.command, cmd.CommandField)
            answered = cmd.command_us(message.command, cmd.MessageIDBeingRespondedTo)
        except cmd.ProtocolError as exc:
            raise self.refuse(str(exc)) from None
        if got != field or answered != message_id or message.context_id != context_id:
            raise self.refuse(
                f"command {got:#06x} to message {answered} on context "
                f"{message.context_id} where a {name} to {message_id} was due"
            )
        return message

    def release(self, timeout: float) -> str:
        """Release the association, or abort it if the peer does not answer in time.

        Return how it ended; never raise: the association is over either way.
        """
        if self.ended:
            return self.ended
        deadline = time.monotonic() + timeout
        try:
            self._send(cmd.encode_release_rq(), timeout)
            while True:
                pdu_type, body = self._pdu(deadline)
                if pdu_type == cmd.PDU_RELEASE_RP:
                    self._finish(RELEASED)
                    return RELEASED
                self._while_releasing(pdu_type, body)
        except LinkEnded as ended:
            return ended.outcome
        except cmd.ProtocolError as exc:
            logger.debug("release: %s; aborting", exc)
            return self.abort()

    def refuse(self, detail: str) -> LinkEnded:
        """Abort an association whose peer broke the protocol; return why."""
        self._abort(cmd.ABORT_SOURCE_PROVIDER, cmd.ABORT_REASON_INVALID_PARAMETER)
        return self._finish(REFUSED, f"the peer broke the protocol: {detail}")

    def abort(self) -> str:
        """Abort the association as its user; return how it ended."""
        if not self.ended:
            self._abort(cmd.ABORT_SOURCE_USER, cmd.ABORT_REASON_NOT_SPECIFIED)
            self._finish(ABORTED, "aborted locally")
        return self.ended

    def _while_releasing(self, pdu_type: int, body: bytes) -> None:
        """Handle a PDU that came while our A-RELEASE-RQ awaits its answer."""
        if pdu_type == cmd.PDU_P_DATA:
            # PS3.8 9.2.3 (Sta7): data may still arrive; nobody awaits it now.
            return
        if pdu_type == cmd.PDU_RELEASE_RQ:
            # PS3.8 9.2.3 (release collision): the requestor answers first.
            self._send(cmd.encode_release_rp(), 1.0)
            return
        if pdu_type == cmd.PDU_ABORT:
            raise self._finish(ABORTED, "the peer aborted instead of releasing")
        raise cmd.ProtocolError(f"PDU type {pdu_type:#04x} during release")

    def _message(self, deadline: float) -> Message:
        """Read PDVs until a message is whole."""
        parts: list[bytes] = []
        command: dict[int, bytes] | None = None
        context = 0
        while True:
            while not self.pdvs:
                self._read_p_data(deadline)
            context_id, control, fragment = self.pdvs.popleft()
            if parts and context_id != context:
                raise cmd.ProtocolError("a message's PDVs on two contexts")
            context = context_id
            is_command = bool(control & cmd.PDV_COMMAND)
            if is_command != (command is None):
                raise cmd.ProtocolError("a data set PDV where a command was due")
            parts.append(fragment)
            if not control & cmd.PDV_LAST:
                continue
            whole = b"".join(parts)
            parts = []
            if command is not None:
                return Message(context, command, whole)
            command = cmd.decode_command(whole)
            if cmd.command_us(command, cmd.CommandDataSetType) == cmd.NO_DATA_SET:
                return Message(context, command, None)

    def _read_p_data(self, deadline: float) -> None:
        """Read the next P-DATA-TF PDU into the queue of PDVs."""
        pdu_type, body = self._pdu(deadline)
        if pdu_type == cmd.PDU_P_DATA:
            self.pdvs.extend(cmd.split_pdvs(body))
            return
        if pdu_type == cmd.PDU_ABORT:
            source, reason = (body[2], body[3]) if len(body) >= 4 else (-1, -1)
            raise self._finish(
                ABORTED,
                f"the peer aborted the association (source {source}, reason {reason})",
            )
        if pdu_type == cmd.PDU_RELEASE_RQ:
            self._send(cmd.encode_release_rp(), 1.0)
            raise self._finish(RELEASED, "the peer released the association")
        raise cmd.ProtocolError(f"unexpected PDU type {pdu_type:#04x}")

    def _pdu(self, deadline: float) -> tuple[int, bytes]:
        """Read one whole PDU; return its type and body."""
        pdu_type, length = cmd.decode_pdu_header(self._take(6, deadline))
        if pdu_type == cmd.PDU_P_DATA:
            limit = max(self.own_max_pdu, _MAX_P_DATA_BYTES)
        elif pdu_type in (cmd.PDU_ABORT, cmd.PDU_RELEASE_RQ, cmd.PDU_RELEASE_RP):
            limit = _SHORT_PDU_BYTES
        else:
            raise cmd.ProtocolError(f"unexpected PDU type {pdu_type:#04x}")
        if length > limit:
            raise cmd.ProtocolError(f"PDU of type {pdu_type:#04x} and length {length}")
        return pdu_type, self._take(length, deadline)

    def _take(self, count: int, deadline: float) -> bytes:
        """Return the next ``count`` bytes of the connection."""
        while self.end - self.start < count:
            self._fill(count, deadline)
        data = bytes(self.view[self.start : self.start + count])
        self.start += count
        return data

    def _fill(self, count: int, deadline: float) -> None:
        """Read what the peer has sent, making room for ``count`` bytes."""
        if self.start == self.end:
            self.start = self.end = 0
        if self.start + count > len(self.buf):
            self._make_room(count)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out()
        self._timeout(remaining)
        try:
            received = self.sock.recv_into(self.view[self.end :])
        except TimeoutError:
            raise self._timed_out() from None
        except OSError as exc:
            raise self._finish(CLOSED, f"connection lost: {exc}") from exc
        if received == 0:
            raise self._finish(CLOSED, "the peer closed the connection")
        self.end += received

    def _make_room(self, count: int) -> None:
        """Move the bytes not yet taken to the front of a buffer of ``count``."""
        left = self.end - self.start
        if count > len(self.buf):
            buf = bytearray(count)
            buf[:left] = self.view[self.start : self.end]
            self.view.release()
            self.buf, self.view = buf, memoryview(buf)
        else:
            self.buf[:left] = self.buf[self.start : self.end]
        self.start, self.end = 0, left

    def _timed_out(self) -> LinkEnded:
        """Abort an association whose peer went silent."""
        self._abort(cmd.ABORT_SOURCE_USER, cmd.ABORT_REASON_NOT_SPECIFIED)
        return self._finish(TIMED_OUT, "no answer in time")

    def _send(self, data: bytes, timeout: float) -> None:
        """Write bytes to the peer, or end the association if that fails."""
        self._check_open()
        self._timeout(timeout)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise self._finish(TIMED_OUT, "the peer took no data in time") from None
        except OSError as exc:
            raise self._finish(CLOSED, f"connection lost: {exc}") from exc

    def _timeout(self, seconds: float) -> None:
        """Bound the next socket operation by about ``seconds``."""
        # Each settimeout() is a system call: the socket's timeout changes only
        # when it is a tenth too long, or too short, for what is left.
        if not 0.9 * self.sock_timeout <= seconds <= self.sock_timeout:
            self.sock.settimeout(seconds)
            self.sock_timeout = seconds

    def _abort(self, source: int, reason: int) -> None:
        """Send an A-ABORT if the connection takes it; never raise."""
        if self.ended:
            return
        self._timeout(1.0)
        try:
            self.sock.sendall(cmd.encode_abort(reason, source))
        except OSError:
            logger.debug("A-ABORT not sent: the connection is gone")

    def _finish(self, outcome: str, detail: str = "") -> LinkEnded:
        """End the association once; return the exception that says how."""
        if not self.ended:
            self.ended = outcome
            logger.debug("association ended (%s): %s", outcome, detail or outcome)
            self.on_end(outcome)
        return LinkEnded(self.ended, detail)

    def _check_open(self) -> None:
        """Raise if the association has already ended."""
        if self.ended:
            raise LinkEnded(self.ended, f"the association has {self.ended}")
