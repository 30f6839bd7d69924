"""Serve one connection on 127.0.0.1 with a program run in inetd mode.

DCMTK 3.6.7's storescp listens on every interface and has no option to bind
one address; in inetd mode (``-id``) it serves the connection it is given as
standard input. This wrapper listens on 127.0.0.1 only, accepts one
connection, sets TCP_NODELAY on it, runs the program with the connection as
its standard input, and writes the program's peak resident memory (KiB) and
CPU time (s), from ``wait4``, to PEAK_FILE.

    python bench/inetd.py PORT PEAK_FILE PROGRAM [ARG ...]
"""

import os
import socket
import subprocess
import sys
from pathlib import Path


def serve_once(port: int, peak_file: Path, command: list[str]) -> int:
    """Accept one connection, hand it to ``command``, return its exit code."""
    with socket.create_server(("127.0.0.1", port)) as server:
        conn, _ = server.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        child = subprocess.Popen(command, stdin=conn.fileno())
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    peak_file.write_text(f"{usage.ru_maxrss} {cpu:.3f}\n")
    return child.returncode


def main(argv: list[str]) -> int:
    """Parse the arguments and serve one connection."""
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    return serve_once(int(argv[0]), Path(argv[1]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
