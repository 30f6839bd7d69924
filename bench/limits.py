"""The machine's own limits for a receive: loopback copy and writing files.

Run as a separate process by the receive benchmark, so that each limit is timed
the way a sender is (from the process's start to its exit):

    python bench/limits.py sink PORT             accept one connection, discard
    python bench/limits.py source PORT BYTES     send BYTES over loopback to a sink
    python bench/limits.py files LIST OUT        copy the files named in LIST
                                                 into OUT (temp file, then rename)

The sink acknowledges the end of the stream with one byte, so the source exits
only once the sink has read everything, and then waits for SIGTERM. Both sides
set TCP_NODELAY.
"""

import os
import signal
import socket
import sys
from pathlib import Path

CHUNK = 1024 * 1024
HOST = "127.0.0.1"


def sink(port: int) -> None:
    """Accept one connection, read it to the end, then acknowledge."""
    with socket.create_server((HOST, port)) as server:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = bytearray(CHUNK)
            while conn.recv_into(buffer):
                pass
            conn.sendall(b"k")
    # Stay until stopped, as a receiver does, so its peak memory can be read.
    signal.pause()


def source(port: int, count: int) -> None:
    """Send ``count`` bytes to the sink and wait for its acknowledgement."""
    block = memoryview(bytes(CHUNK))
    with socket.create_connection((HOST, port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        left = count
        while left > 0:
            step = min(left, CHUNK)
            conn.sendall(block[:step])
            left -= step
        conn.shutdown(socket.SHUT_WR)
        if conn.recv(1) != b"k":
            raise SystemExit("sink did not acknowledge")


def copy_files(listing: Path, out: Path) -> None:
    """Write a copy of each listed file into ``out`` as a receiver would."""
    incoming = out / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    for line in listing.read_text().splitlines():
        src = Path(line)
        partial = incoming / src.name
        partial.write_bytes(src.read_bytes())
        os.replace(partial, out / src.name)


def main(argv: list[str]) -> int:
    """Run the mode the arguments name."""
    match argv:
        case ["sink", port]:
            sink(int(port))
        case ["source", port, count]:
            source(int(port), int(count))
        case ["files", listing, out]:
            copy_files(Path(listing), Path(out))
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
