"""A pynetdicom storage SCU: the receive benchmark's second kind of sender.

It sends every file over one association, as ``storescu -R`` does, with
TCP_NODELAY set on its socket when the connection opens (pynetdicom leaves
Nagle's algorithm on, which stalls each C-STORE about 44 ms on loopback).
pynetdicom fills whatever PDU size the receiver allows.

    python bench/pynet_sender.py PORT FILE...
"""

import socket
import sys
from pathlib import Path

from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from pacscommon.network import keep_responses_for_requests

BENCH = Path(__file__).resolve().parent
CALLED_AET = "CHRISLOCAL"


def send(port: int, paths: list[str]) -> int:
    """Send every file over one association; return the exit code."""

    def nodelay(event: evt.Event) -> None:
        event.assoc.dul.socket.socket.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )

    ae = AE(ae_title="BENCHPYNET")
    ae.add_requested_context(CTImageStorage)
    ae.dimse_timeout = 300
    handlers = [(evt.EVT_CONN_OPEN, nodelay)]
    assoc = ae.associate("127.0.0.1", port, ae_title=CALLED_AET, evt_handlers=handlers)
    if not assoc.is_established:
        print("pynet_sender: association not established", file=sys.stderr)
        return 1
    # pynetdicom 3.0.4's reactor can take a response meant for send_c_store
    # and drop it (pacscommon.network says how); the project's guard keeps it.
    keep_responses_for_requests(assoc)
    try:
        for number, path in enumerate(paths):
            status = assoc.send_c_store(path)
            code = getattr(status, "Status", None)
            if code != 0x0000:
                print(
                    f"pynet_sender: {path} (#{number}): status {code}", file=sys.stderr
                )
                return 1
    finally:
        assoc.release()
    return 0


def command(
    port: int, out: Path, folder: Path, names: list[str], size: int
) -> list[str]:
    """Return the command that sends the set with pynetdicom."""
    del out, folder, size
    return [sys.executable, str(BENCH / "pynet_sender.py"), str(port), *names]


if __name__ == "__main__":
    sys.exit(send(int(sys.argv[1]), sys.argv[2:]))
