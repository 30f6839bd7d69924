"""C-MOVE as a service class user, over a :class:`~pacscommon.channel.Channel`.

A C-MOVE's instances go to another association (the move destination's); on
ours come only C-MOVE-RSPs: pending ones that count the sub-operations, then a
final one (PS3.4 C.4.2). A PACS sends one pending response per instance and
does not wait for us to read it, so a requestor slower than the transfer
(pynetdicom takes about a millisecond per message) fills the socket's buffer
and holds the PACS back. Here each response costs one command set decoded by
hand; it is handed to the caller as pynetdicom's ``send_c_move`` hands it, a
status data set and an identifier, so both are read alike.
"""

import logging
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.presentation import PresentationContext

from pacscommon import commands as cmd
from pacscommon.channel import Channel, LinkEnded
from pacscommon.queries import decoded, encoded

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

Response = tuple[Dataset, Dataset | None]


def send_c_move(
    channel: Channel,
    context: PresentationContext,
    identifier: Dataset,
    destination: str,
    timeout: float,
) -> Iterator[Response]:
    """Send one C-MOVE-RQ; yield (status, identifier) of each response.

    ``timeout`` bounds the wait for each response. If the association ends
    first (aborted, dropped, or silent for ``timeout``), the last status
    yielded is an empty data set, as with pynetdicom.
    """
    syntax = UID(str(context.transfer_syntax[0]))
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
        channel.send(context_id, request, encoded(identifier, syntax), timeout)
        while True:
            status, answer = _response(channel, context_id, message_id, syntax, timeout)
            yield status, answer
            if status.Status != _PENDING:
                return
    except LinkEnded as ended:
        logger.warning("C-MOVE ended: %s", ended)
        yield Dataset(), None


def _response(
    channel: Channel, context_id: int, message_id: int, syntax: UID, timeout: float
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
    return status, decoded(message.data, syntax, "C-MOVE-RSP identifier")


def retrieve_status(command: dict[int, bytes]) -> Dataset:
    """Return a C-MOVE or C-GET response's status and counts as a data set."""
    status = Dataset()
    status.Status = cmd.command_us(command, cmd.Status)
    for element, keyword in _COUNTS.items():
        # PS3.4 C.4.2.1.5, C.4.3.1.4: a final response may leave a count out,
        # or send it empty.
        if command.get(element):
            setattr(status, keyword, cmd.command_us(command, element))
    comment = cmd.command_text(command, cmd.ErrorComment)
    if comment:
        status.ErrorComment = comment
    return status
