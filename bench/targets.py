"""What the receive benchmark measures: the receivers and the machine's limits.

A target is a command to time (a DCMTK ``storescu`` of the whole data set for a
receiver; ``dd``, a loopback copy or a file copy for a limit) and, for most, a
server process started before it and stopped after it. No receiver fsyncs.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import programs
import pynet_sender

BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
PACSLISTENER = programs.program("pacslistener")
STORESCU = "/usr/bin/storescu"
STORESCP = "/usr/bin/storescp"
DD = "/usr/bin/dd"
AET = "CHRISLOCAL"
NODELAY = {"TCP_NODELAY": "1"}  # read by DCMTK 3.6.7 when it opens a socket

# (port, output folder) -> command
ServerCommand = Callable[[int, Path], list[str]]
# (port, output folder, data set folder, file names, bytes) -> command
SenderCommand = Callable[[int, Path, Path, list[str], int], list[str]]


@dataclass(frozen=True)
class Target:
    """One thing to time: a receiver, or a limit of the machine."""

    name: str
    label: str
    sender: SenderCommand
    server: ServerCommand | None = None
    server_env: dict[str, str] = field(default_factory=dict)
    stored_glob: str | None = None  # files that count as stored, if any
    make_output: bool = False  # the server needs the output folder to exist
    one_shot: bool = False  # serves one association, then reports its peak
    reference: str = "storescp"  # the target its ratio is to, same sender


def peak_file(out: Path) -> Path:
    """Return where a one-shot server writes its peak memory."""
    return out.parent / f"{out.name}.peak"


def storescu(
    port: int, out: Path, folder: Path, names: list[str], size: int
) -> list[str]:
    """Send every file of the set over one association."""
    del out, folder, size
    return [STORESCU, "-R", "-aet", "BENCHSCU", "-aec", AET,
            "127.0.0.1", str(port), *names]  # fmt: skip


def listener(*extra: str, program: list[str] | None = None) -> ServerCommand:
    """Return the command of pacslistener with ``extra`` options."""
    base = program or [PACSLISTENER]

    def command(port: int, out: Path) -> list[str]:
        return [*base, "--aet", AET, "--port", str(port), "--bind", "127.0.0.1",
                "--data-dir", str(out), "--log-level", "WARNING", *extra]  # fmt: skip

    return command


def storescp(*extra: str) -> ServerCommand:
    """Return the command of DCMTK's storescp with ``extra`` options."""

    # NOTE: storescp 3.6.7 cannot bind one address, so it runs in inetd mode
    # behind bench/inetd.py, which listens on 127.0.0.1 only.
    def command(port: int, out: Path) -> list[str]:
        return [PYTHON, str(BENCH / "inetd.py"), str(port), str(peak_file(out)),
                STORESCP, "-id", "-od", str(out), *extra]  # fmt: skip

    return command


def bare_scp(port: int, out: Path) -> list[str]:
    """Return the command of the bare pynetdicom SCP."""
    return [PYTHON, str(BENCH / "bare_scp.py"), "--port", str(port),
            "--output-dir", str(out)]  # fmt: skip


def dd_fsync(
    port: int, out: Path, folder: Path, names: list[str], size: int
) -> list[str]:
    """Write the set's byte volume to one file, then fsync it."""
    return [DD, "if=/dev/zero", f"of={out / 'dd.bin'}", "bs=1M", f"count={size}",
            "iflag=count_bytes", "conv=fsync", "status=none"]  # fmt: skip


def loopback_sink(port: int, out: Path) -> list[str]:
    """Return the command of the loopback sink."""
    return [PYTHON, str(BENCH / "limits.py"), "sink", str(port)]


def loopback_source(
    port: int, out: Path, folder: Path, names: list[str], size: int
) -> list[str]:
    """Send the set's byte volume to the sink."""
    return [PYTHON, str(BENCH / "limits.py"), "source", str(port), str(size)]


def copy_files(
    port: int, out: Path, folder: Path, names: list[str], size: int
) -> list[str]:
    """Copy the set's files into the output folder, each via a rename."""
    listing = out.parent / f"{out.name}.list"
    listing.write_text("".join(f"{folder / n}\n" for n in names))
    return [PYTHON, str(BENCH / "limits.py"), "files", str(listing), str(out)]


LISTENER_DEFAULT = "pacslistener (--max-pdu 1048576, default)"
TARGETS = {
    t.name: t
    for t in (
        Target("pacslistener", LISTENER_DEFAULT, storescu, listener(),
               stored_glob="**/*.dcm"),
        Target("pacslistener-16k", "pacslistener --max-pdu 16384", storescu,
               listener("--max-pdu", "16384"), stored_glob="**/*.dcm"),
        Target("pacslistener-unlimited", "pacslistener --max-pdu 0 (unlimited)",
               storescu, listener("--max-pdu", "0"), stored_glob="**/*.dcm"),
        Target("pacslistener-nagle", "pacslistener, TCP_NODELAY off (1 MiB PDU)",
               storescu, listener(program=[PYTHON, str(BENCH / "listener_nagle.py")]),
               stored_glob="**/*.dcm"),
        Target("storescp", "DCMTK storescp -pdu 131072 +B", storescu,
               storescp("-pdu", "131072", "+B"), NODELAY, "*", True, True),
        Target("storescp-default", "DCMTK storescp (16 KiB PDU)", storescu,
               storescp(), NODELAY, "*", True, True),
        Target("storescp-pdu128k", "DCMTK storescp -pdu 131072", storescu,
               storescp("-pdu", "131072"), NODELAY, "*", True, True),
        Target("storescp-bitpreserving", "DCMTK storescp +B", storescu,
               storescp("+B"), NODELAY, "*", True, True),
        Target("storescp-ignore", "floor: storescp -pdu 131072 --ignore (stores "
               "nothing)", storescu, storescp("-pdu", "131072", "--ignore"),
               NODELAY, None, True, True),
        Target("bare", "bare pynetdicom SCP (chunked, PDU 0)", storescu,
               bare_scp, stored_glob="*.dcm"),
        Target("pacslistener-pynet", "pynetdicom sender -> pacslistener (default)",
               pynet_sender.command, listener(), stored_glob="**/*.dcm",
               reference="storescp-pynet"),
        Target("storescp-pynet", "pynetdicom sender -> DCMTK storescp -pdu 131072 "
               "+B", pynet_sender.command, storescp("-pdu", "131072", "+B"),
               NODELAY, "*", True, True, reference="storescp-pynet"),
        Target("bare-pynet", "pynetdicom sender -> bare pynetdicom SCP",
               pynet_sender.command, bare_scp, stored_glob="*.dcm",
               reference="storescp-pynet"),
        Target("dd", "limit: dd conv=fsync, same bytes, one file", dd_fsync,
               make_output=True),
        Target("loopback", "limit: Python socket copy, same bytes", loopback_source,
               loopback_sink),
        Target("files", "limit: Python copy of the files (temp + rename)",
               copy_files, stored_glob="*.dcm"),
    )
}  # fmt: skip
# What a full run times on each data set. A PDU of 16 KiB already holds a whole
# small instance (9.5 KB), so the small set skips the --max-pdu variants.
LIMITS = ("storescp-ignore", "dd", "loopback", "files")
PYNET = ("pacslistener-pynet", "storescp-pynet", "bare-pynet")
DEFAULT_TARGETS = {
    "ct": ("pacslistener", "pacslistener-16k", "pacslistener-unlimited",
           "pacslistener-nagle", "storescp", "bare", *PYNET, *LIMITS),
    "small": ("pacslistener", "pacslistener-nagle", "storescp", "bare", *PYNET,
              *LIMITS),
}  # fmt: skip
