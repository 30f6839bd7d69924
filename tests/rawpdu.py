"""Reading PDUs by hand, for the test peers that write them by hand."""

import socket

from pacscommon import commands as cmd


def recv_exactly(sock: socket.socket, count: int, peer: str) -> bytes:
    """Return the next ``count`` bytes; raise if ``peer`` closes first."""
    data = b""
    while len(data) < count:
        piece = sock.recv(count - len(data))
        if not piece:
            raise ConnectionError(f"{peer} closed the connection")
        data += piece
    return data


def read_pdu(sock: socket.socket, peer: str) -> tuple[int, bytes]:
    """Read one PDU; return its type and body."""
    pdu_type, length = cmd.decode_pdu_header(recv_exactly(sock, 6, peer))
    return pdu_type, recv_exactly(sock, length, peer)
