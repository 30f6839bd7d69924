"""C-ECHO as a service class user, over a :class:`~pacscommon.channel.Channel`."""

from pacscommon import commands as cmd
from pacscommon.channel import Channel

# PS3.4 A.4: the Verification SOP class
VERIFICATION = "1.2.840.10008.1.1"
C_ECHO_RSP = cmd.C_ECHO_RQ | cmd.RESPONSE_BIT


def send_c_echo(channel: Channel, context_id: int, timeout: float) -> int:
    """Send a C-ECHO-RQ; return the status of its C-ECHO-RSP.

    Raise :class:`~pacscommon.channel.LinkEnded` if the association ends, or no
    response comes within ``timeout`` seconds.
    """
    message_id = channel.next_message_id()
    request = cmd.encode_request(
        cmd.C_ECHO_RQ, message_id, VERIFICATION, None, with_data=False
    )
    channel.send(context_id, request, None, timeout)
    message = channel.receive_response(
        "C-ECHO-RSP", C_ECHO_RSP, context_id, message_id, timeout
    )
    try:
        return cmd.command_us(message.command, cmd.Status)
    except cmd.ProtocolError as exc:
        raise channel.refuse(str(exc)) from None
