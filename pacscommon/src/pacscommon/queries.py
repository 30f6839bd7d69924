"""C-FIND as a service class user, over a :class:`~pacscommon.channel.Channel`.

The request's command set is written by hand (:mod:`pacscommon.commands`), its
identifier encoded by pydicom in the context's transfer syntax. Each response
keeps its identifier's bytes; pydicom decodes them as pynetdicom does when the
identifier is first asked for (lazily, so that its text is read with the
answer's own SpecificCharacterSet when a value is used), and a caller that
reads them itself (:mod:`pacscommon.answerscan`) spares that decoding.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.uid import UID, ImplicitVRLittleEndian
from pynetdicom.dsutils import decode, encode
from pynetdicom.presentation import PresentationContext

from pacscommon import commands as cmd
from pacscommon.channel import Channel

logger = logging.getLogger(__name__)

# PS3.7 C.4.1: C-FIND-RSP
C_FIND_RSP = cmd.C_FIND_RQ | cmd.RESPONSE_BIT
# PS3.4 C.4.1.1.4: the statuses after which more responses follow
_PENDING = frozenset({0xFF00, 0xFF01})


@dataclass(frozen=True)
class FindResponse:
    """One C-FIND-RSP: its status, and the match a pending one carries.

    ``data`` is the match's identifier as received, in ``syntax``.
    """

    status: int
    data: bytes | None = None
    syntax: UID = ImplicitVRLittleEndian
    error_comment: str = ""

    @property
    def pending(self) -> bool:
        """Return whether more responses follow this one."""
        return self.status in _PENDING

    @cached_property
    def identifier(self) -> Dataset | None:
        """Return the match, decoded by pydicom, or ``None`` if it cannot be."""
        return None if self.data is None else decoded(self.data, self.syntax)


def send_c_find(
    channel: Channel,
    context: PresentationContext,
    identifier: Dataset,
    timeout: float,
    priority: int = cmd.PRIORITY_LOW,
) -> Iterator[FindResponse]:
    """Send one C-FIND-RQ; yield its responses, the final one last.

    ``timeout`` bounds the wait for each response. Raises
    :class:`~pacscommon.channel.LinkEnded` if the association ends first.
    """
    syntax = UID(str(context.transfer_syntax[0]))
    context_id = int(context.context_id or 0)
    message_id = channel.next_message_id()
    command = cmd.encode_request(
        cmd.C_FIND_RQ, message_id, str(context.abstract_syntax), priority
    )
    channel.send(context_id, command, encoded(identifier, syntax), timeout)
    while True:
        response = read_response(channel, context_id, message_id, syntax, timeout)
        yield response
        if not response.pending:
            return


def read_response(
    channel: Channel, context_id: int, message_id: int, syntax: UID, timeout: float
) -> FindResponse:
    """Read the next C-FIND-RSP to ``message_id``; abort on anything else."""
    message = channel.receive_response(
        "C-FIND-RSP", C_FIND_RSP, context_id, message_id, timeout
    )
    try:
        status = cmd.command_us(message.command, cmd.Status)
    except cmd.ProtocolError as exc:
        raise channel.refuse(str(exc)) from None
    comment = cmd.command_text(message.command, cmd.ErrorComment)
    if status not in _PENDING or message.data is None:
        return FindResponse(status, None, syntax, comment)
    return FindResponse(status, message.data, syntax, comment)


def encoded(identifier: Dataset, syntax: UID) -> bytes:
    """Return an identifier encoded in ``syntax``."""
    data = encode(
        identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
    )
    if data is None:
        raise ValueError(f"the C-FIND identifier cannot be encoded as {syntax.name}")
    return data


def decoded(data: bytes, syntax: UID, what: str = "C-FIND answer") -> Dataset | None:
    """Return a response's identifier, or ``None`` if pydicom cannot read it."""
    try:
        return decode(
            BytesIO(data),
            syntax.is_implicit_VR,
            syntax.is_little_endian,
            syntax.is_deflated,
        )
    except Exception as exc:  # noqa: BLE001 - one bad answer must not end the query
        logger.warning("a %s could not be decoded: %s", what, exc)
        return None
