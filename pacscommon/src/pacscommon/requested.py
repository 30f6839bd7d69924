"""Associations we request and negotiate ourselves, for C-ECHO and C-MOVE.

A C-MOVE needs one presentation context, small command sets and an identifier
of three keys; its instances go to another association. pynetdicom would
negotiate it (as :mod:`pacscommon.requestor` does for C-FIND and C-GET), but
importing pynetdicom and pydicom takes about 0.15 s, more than a fifth of a
whole 500-instance pull by DCMTK's movescu (bench/RESULTS.md). So the
A-ASSOCIATE-RQ is encoded here and the answer read by hand (PS3.8 9.3.2 to
9.3.4), and the established association is a :class:`Channel` in the caller's
thread, with no other thread. The errors, and their texts, are those of
:func:`pacscommon.network.associate`.
"""

import logging
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pacscommon import commands as cmd
from pacscommon.channel import Channel
from pacscommon.errors import AssociationAborted, AssociationRejected
from pacscommon.peers import (
    Peer,
    Timeouts,
    aborted_while_negotiating,
    rejected,
    unreachable,
)
from pacscommon.tls import client_context

logger = logging.getLogger(__name__)

# PS3.7 A.2.1: the DICOM application context
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
# PS3.5 10: the transfer syntaxes offered for command-sized identifiers
# (moves.RetrieveKeys encodes an identifier in each of them)
OFFERED_SYNTAXES = (cmd.IMPLICIT_VR_LITTLE_ENDIAN, cmd.EXPLICIT_VR_LITTLE_ENDIAN)
# PS3.7 D.3.3.2: this requestor's implementation (a UUID-derived UID, PS3.5 B.2)
IMPLEMENTATION_UID = "2.25.80294142360206122437099875331879959850"
IMPLEMENTATION_VERSION = "PACSPULL_0_1"
# The longest PDU we ask the peer to send: responses are a few hundred bytes.
OWN_MAX_PDU = 16382

# PS3.8 9.3.2: item and sub-item types
_ITEM_APPLICATION_CONTEXT = 0x10
_ITEM_CONTEXT_RQ = 0x20
_ITEM_CONTEXT_AC = 0x21
_ITEM_ABSTRACT_SYNTAX = 0x30
_ITEM_TRANSFER_SYNTAX = 0x40
_ITEM_USER_INFORMATION = 0x50
_ITEM_MAXIMUM_LENGTH = 0x51
_ITEM_IMPLEMENTATION_UID = 0x52
_ITEM_IMPLEMENTATION_VERSION = 0x55
# PS3.8 9.3.3.2: the result of a presentation context that was accepted
_ACCEPTANCE = 0
_PROTOCOL_VERSION = 0x0001
_FIXED_FIELDS = 68  # version, reserved, two AE titles, 32 reserved bytes
_MAX_ANSWER_BYTES = 1024 * 1024
_ITEM = struct.Struct(">BxH")


@dataclass(frozen=True)
class Context:
    """A presentation context the peer accepted: its ID, SOP class and syntax."""

    context_id: int
    abstract_syntax: str
    transfer_syntax: tuple[str]


class RequestedAssociation:
    """An established association we requested; its messages go by its channel."""

    def __init__(
        self,
        sock: socket.socket,
        peer_max_pdu: int,
        accepted: list[Context],
        timeouts: Timeouts,
    ) -> None:
        self.accepted_contexts = accepted
        self.acse_timeout = timeouts.acse
        self.dimse_timeout = timeouts.dimse
        self._sock = sock
        self._channel = Channel(sock, peer_max_pdu, OWN_MAX_PDU, self._end)

    @property
    def is_established(self) -> bool:
        """Return whether the association is still up."""
        return not self._channel.ended

    def channel(self) -> Channel:
        """Return the association's channel."""
        return self._channel

    def release(self) -> None:
        """Release the association; abort it if the peer does not answer in time."""
        self._channel.release(self.acse_timeout)

    def abort(self, block: bool = True) -> None:
        """Abort the association (from any thread: a blocked read then ends)."""
        self._channel.abort()

    def _end(self, outcome: str) -> None:
        """Close the connection, waking a thread that waits on it."""
        _close(self._sock)


def request_association(
    peer: Peer, timeouts: Timeouts, abstract_syntaxes: Sequence[str]
) -> RequestedAssociation:
    """Open an association with ``peer`` for ``abstract_syntaxes``, or raise why not."""
    sock = _connect(peer, timeouts)
    try:
        sock.sendall(associate_rq(peer, abstract_syntaxes))
        pdu_type, body = _read_answer(sock, timeouts.acse)
    except OSError:
        _close(sock)
        raise aborted_while_negotiating(peer) from None
    try:
        return _established(sock, peer, timeouts, abstract_syntaxes, pdu_type, body)
    except (AssociationAborted, AssociationRejected):
        _close(sock)
        raise


def _established(
    sock: socket.socket,
    peer: Peer,
    timeouts: Timeouts,
    abstract_syntaxes: Sequence[str],
    pdu_type: int,
    body: bytes,
) -> RequestedAssociation:
    """Return the association an A-ASSOCIATE-AC establishes; raise on any other."""
    if pdu_type == cmd.PDU_ASSOCIATE_RJ and len(body) >= 4:
        raise rejected(peer, body[1], body[2], body[3])
    if pdu_type != cmd.PDU_ASSOCIATE_AC:
        logger.debug("PDU type %#04x where an A-ASSOCIATE-AC was due", pdu_type)
        if pdu_type != cmd.PDU_ABORT:
            _send_abort(
                sock, cmd.ABORT_SOURCE_PROVIDER, cmd.ABORT_REASON_UNEXPECTED_PDU
            )
        raise aborted_while_negotiating(peer)
    try:
        accepted, peer_max_pdu = decode_associate_ac(body, abstract_syntaxes)
    except cmd.ProtocolError as exc:
        logger.debug("A-ASSOCIATE-AC: %s", exc)
        _send_abort(sock, cmd.ABORT_SOURCE_PROVIDER, cmd.ABORT_REASON_INVALID_PARAMETER)
        raise aborted_while_negotiating(peer) from None
    if not accepted:
        # As pynetdicom does: an association with nothing to say is aborted.
        logger.debug("the peer accepted none of the presentation contexts")
        _send_abort(sock, cmd.ABORT_SOURCE_USER, cmd.ABORT_REASON_NOT_SPECIFIED)
        raise aborted_while_negotiating(peer)
    logger.info("association with %s established", peer)
    return RequestedAssociation(sock, peer_max_pdu, accepted, timeouts)


def _connect(peer: Peer, timeouts: Timeouts) -> socket.socket:
    """Connect to the peer (with TLS if asked), or raise it is unreachable."""
    try:
        sock = socket.create_connection((peer.host, peer.port), timeouts.connect)
    except OSError as exc:
        logger.debug("connect to %s: %s", peer, exc)
        raise unreachable(peer) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if peer.tls is None:
        return sock
    try:
        return client_context(peer.tls).wrap_socket(sock, server_hostname=peer.host)
    except OSError as exc:
        logger.debug("TLS handshake with %s: %s", peer, exc)
        _close(sock)
        raise unreachable(peer) from None


def associate_rq(peer: Peer, abstract_syntaxes: Sequence[str]) -> bytes:
    """Return the A-ASSOCIATE-RQ PDU: one context per abstract syntax, IDs 1, 3..."""
    items = [_item(_ITEM_APPLICATION_CONTEXT, _ascii(APPLICATION_CONTEXT))]
    for index, uid in enumerate(abstract_syntaxes):
        sub_items = _item(_ITEM_ABSTRACT_SYNTAX, _ascii(uid))
        for syntax in OFFERED_SYNTAXES:
            sub_items += _item(_ITEM_TRANSFER_SYNTAX, _ascii(syntax))
        header = bytes((2 * index + 1, 0, 0, 0))
        items.append(_item(_ITEM_CONTEXT_RQ, header + sub_items))
    user = (
        _item(_ITEM_MAXIMUM_LENGTH, struct.pack(">I", OWN_MAX_PDU))
        + _item(_ITEM_IMPLEMENTATION_UID, _ascii(IMPLEMENTATION_UID))
        + _item(_ITEM_IMPLEMENTATION_VERSION, _ascii(IMPLEMENTATION_VERSION))
    )
    items.append(_item(_ITEM_USER_INFORMATION, user))
    fixed = (
        struct.pack(">HH", _PROTOCOL_VERSION, 0)
        + _ae(peer.called_aet)
        + _ae(peer.calling_aet)
        + bytes(32)
    )
    body = fixed + b"".join(items)
    return struct.pack(">BxI", cmd.PDU_ASSOCIATE_RQ, len(body)) + body


def decode_associate_ac(
    body: bytes, abstract_syntaxes: Sequence[str]
) -> tuple[list[Context], int]:
    """Return the accepted contexts and the peer's maximum PDU length (0: none)."""
    if len(body) < _FIXED_FIELDS:
        raise cmd.ProtocolError(f"A-ASSOCIATE-AC of {len(body)} bytes")
    accepted: list[Context] = []
    peer_max_pdu = 0
    for item_type, value in _items(body, _FIXED_FIELDS):
        if item_type == _ITEM_CONTEXT_AC:
            context = _accepted_context(value, abstract_syntaxes)
            if context is not None:
                accepted.append(context)
        elif item_type == _ITEM_USER_INFORMATION:
            for sub_type, sub_value in _items(value, 0):
                if sub_type == _ITEM_MAXIMUM_LENGTH and len(sub_value) == 4:
                    peer_max_pdu = struct.unpack(">I", sub_value)[0]
    return accepted, peer_max_pdu


def _accepted_context(value: bytes, abstract_syntaxes: Sequence[str]) -> Context | None:
    """Return a context the item accepts, or None if the peer refused it."""
    if len(value) < 4:
        raise cmd.ProtocolError("presentation context item too short")
    context_id, result = value[0], value[2]
    index = (context_id - 1) // 2
    if context_id % 2 == 0 or not 0 <= index < len(abstract_syntaxes):
        raise cmd.ProtocolError(f"answer for presentation context {context_id}")
    if result != _ACCEPTANCE:
        return None
    syntaxes = [v for t, v in _items(value, 4) if t == _ITEM_TRANSFER_SYNTAX]
    if len(syntaxes) != 1:
        raise cmd.ProtocolError(f"context {context_id} accepted with no one syntax")
    syntax = syntaxes[0].decode("ascii", "replace").rstrip("\x00 ")
    if syntax not in OFFERED_SYNTAXES:
        raise cmd.ProtocolError(f"context {context_id} accepted with {syntax}")
    return Context(context_id, abstract_syntaxes[index], (syntax,))


def _items(raw: bytes, offset: int) -> list[tuple[int, bytes]]:
    """Return the type and value of each item from ``offset`` on."""
    found = []
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise cmd.ProtocolError("an item header runs past its PDU")
        item_type, length = _ITEM.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise cmd.ProtocolError(f"item {item_type:#04x} runs past its PDU")
        found.append((item_type, raw[offset : offset + length]))
        offset += length
    return found


def _read_answer(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    """Read the peer's answer to the A-ASSOCIATE-RQ: one whole PDU."""
    deadline = time.monotonic() + timeout
    header = _read(sock, 6, deadline)
    pdu_type, length = cmd.decode_pdu_header(header)
    if length > _MAX_ANSWER_BYTES:
        raise OSError(f"a PDU of {length} bytes in answer to A-ASSOCIATE-RQ")
    return pdu_type, _read(sock, length, deadline)


def _read(sock: socket.socket, count: int, deadline: float) -> bytes:
    """Read exactly ``count`` bytes before ``deadline``; raise OSError if not."""
    parts = bytearray()
    while len(parts) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer in time")
        sock.settimeout(remaining)
        chunk = sock.recv(count - len(parts))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        parts += chunk
    return bytes(parts)


def _send_abort(sock: socket.socket, source: int, reason: int) -> None:
    """Abort a negotiation gone wrong, if the connection still takes it."""
    try:
        sock.settimeout(1.0)
        sock.sendall(cmd.encode_abort(reason, source))
    except OSError:
        logger.debug("A-ABORT not sent: the connection is gone")


def _close(sock: socket.socket) -> None:
    """Shut the connection down and close it; never raise."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected any more: close() is all that is left
    sock.close()


def _item(item_type: int, value: bytes) -> bytes:
    """Return an item or sub-item: type, reserved byte, 2-byte length, value."""
    return _ITEM.pack(item_type, len(value)) + value


def _ascii(uid: str) -> bytes:
    """Return a UID as the bytes of an item's value (no padding, PS3.8 9.3.2)."""
    return uid.encode("ascii")


def _ae(title: str) -> bytes:
    """Return an AE title as its 16-byte field, padded with spaces."""
    return title.encode("ascii", "replace")[:16].ljust(16)
