"""C-MOVE as a service class user, over a :class:`~pacscommon.channel.Channel`.

A C-MOVE's instances go to another association (the move destination's); on
ours come only C-MOVE-RSPs: pending ones that count the sub-operations, then a
final one (PS3.4 C.4.2). A PACS sends one pending response per instance and
does not wait for us to read it, so a requestor slower than the transfer
(pynetdicom takes about a millisecond per message) fills the socket's buffer
and holds the PACS back. Here each response costs one command set decoded by
hand; it is handed to the caller as pynetdicom's ``send_c_move`` hands it, a
status (read like pynetdicom's status data set) and an identifier, so both are
read alike. The request's identifier, three keys, is encoded by hand too:
nothing here needs pydicom unless a response carries an identifier.
"""

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pacscommon import commands as cmd
from pacscommon.channel import Channel, LinkEnded

logger = logging.getLogger(__name__)

C_MOVE_RSP = cmd.C_MOVE_RQ | cmd.RESPONSE_BIT
# PS3.4 C.4.2.1.5: the status after which more responses follow
_PENDING = 0xFF00
_COUNTS = {
    cmd.NumberOfRemainingSuboperations: "NumberOfRemainingSuboperations",
    cmd.NumberOfCompletedSuboperations: "NumberOfCompletedSuboperations",
    cmd.NumberOfFailedSuboperations: "NumberOfFailedSuboperations",
    cmd.NumberOfWarningSuboperations: "NumberOfWarningSuboperations",
}

_TAG = struct.Struct("<HH")
_IMPLICIT_LENGTH = struct.Struct("<I")
_EXPLICIT_LENGTH = struct.Struct("<2sH")


class RetrieveStatus(dict[str, Any]):
    """A retrieve response's status and counts by keyword, read like a data set.

    ``"Status" in status``, ``status.Status`` and ``status.get(...)`` work as
    on the status data set pynetdicom yields; an empty one means no response.
    """

    def __getattr__(self, keyword: str) -> Any:
        try:
            return self[keyword]
        except KeyError:
            raise AttributeError(keyword) from None


class Context(Protocol):
    """What a presentation context tells a request: its ID and syntaxes."""

    @property
    def context_id(self) -> Any: ...

    @property
    def abstract_syntax(self) -> Any: ...

    @property
    def transfer_syntax(self) -> Any: ...


@dataclass(frozen=True)
class RetrieveKeys:
    """The identifier of a study- or series-level retrieve (PS3.4 C.4.2.2.1)."""

    level: str
    StudyInstanceUID: str
    SeriesInstanceUID: str | None = None

    def encode(self, syntax: str) -> bytes:
        """Return the identifier in ``syntax`` (a Little Endian one)."""
        # (0008,0052) QueryRetrieveLevel CS; (0020,000D), (0020,000E) UI
        elements = [(0x0008, 0x0052, b"CS", _even(self.level, b" "))]
        elements.append((0x0020, 0x000D, b"UI", _even(self.StudyInstanceUID, b"\0")))
        if self.SeriesInstanceUID is not None:
            value = _even(self.SeriesInstanceUID, b"\0")
            elements.append((0x0020, 0x000E, b"UI", value))
        if syntax == cmd.IMPLICIT_VR_LITTLE_ENDIAN:
            return b"".join(
                _TAG.pack(g, e) + _IMPLICIT_LENGTH.pack(len(v)) + v
                for g, e, _, v in elements
            )
        if syntax == cmd.EXPLICIT_VR_LITTLE_ENDIAN:
            return b"".join(
                _TAG.pack(g, e) + _EXPLICIT_LENGTH.pack(vr, len(v)) + v
                for g, e, vr, v in elements
            )
        raise ValueError(f"no identifier encoding for transfer syntax {syntax}")


def _even(text: str, pad: bytes) -> bytes:
    """Return a value's bytes padded to even length (PS3.5 6.2)."""
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


Response = tuple[RetrieveStatus, Any]


def send_c_move(
    channel: Channel,
    context: Context,
    identifier: RetrieveKeys,
    destination: str,
    timeout: float,
) -> Iterator[Response]:
    """Send one C-MOVE-RQ; yield (status, identifier) of each response.

    ``timeout`` bounds the wait for each response. If the association ends
    first (aborted, dropped, or silent for ``timeout``), the last status
    yielded is empty, as with pynetdicom. An identifier in a response (the
    failed instances of a final one) is decoded by pydicom.
    """
    syntax = str(context.transfer_syntax[0])
    context_id = int(context.context_id or 0)
    message_id = channel.next_message_id()
    request = cmd.encode_request(
        cmd.C_MOVE_RQ,
        message_id,
        str(context.abstract_syntax),
        cmd.PRIORITY_MEDIUM,
        move_destination=destination,
    )
    try:
        channel.send(context_id, request, identifier.encode(syntax), timeout)
        while True:
            status, answer = _response(channel, context_id, message_id, syntax, timeout)
            yield status, answer
            if status.Status != _PENDING:
                return
    except LinkEnded as ended:
        logger.warning("C-MOVE ended: %s", ended)
        yield RetrieveStatus(), None


def _response(
    channel: Channel, context_id: int, message_id: int, syntax: str, timeout: float
) -> Response:
    """Read the next C-MOVE-RSP to ``message_id``; abort on anything else."""
    message = channel.receive_response(
        "C-MOVE-RSP", C_MOVE_RSP, context_id, message_id, timeout
    )
    try:
        status = retrieve_status(message.command)
    except cmd.ProtocolError as exc:
        raise channel.refuse(str(exc)) from None
    if message.data is None:
        return status, None
    from pydicom.uid import UID

    from pacscommon.queries import decoded

    return status, decoded(message.data, UID(syntax), "C-MOVE-RSP identifier")


def retrieve_status(command: dict[int, bytes]) -> RetrieveStatus:
    """Return a C-MOVE or C-GET response's status and counts."""
    status = RetrieveStatus()
    status["Status"] = cmd.command_us(command, cmd.Status)
    for element, keyword in _COUNTS.items():
        # PS3.4 C.4.2.1.5, C.4.3.1.4: a final response may leave a count out,
        # or send it empty.
        if command.get(element):
            status[keyword] = cmd.command_us(command, element)
    comment = cmd.command_text(command, cmd.ErrorComment)
    if comment:
        status["ErrorComment"] = comment
    return status
