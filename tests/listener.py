"""Run the project's own pacslistener as a real process on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

BIN = Path(sys.executable).parent


def program(name: str) -> str:
    """Return the path of one of the project's console scripts."""
    path = BIN / name
    return str(path) if path.exists() else name


class Listener:
    """A pacslistener process serving ``data_dir`` on ``port``."""

    def __init__(
        self, data_dir: Path, port: int, aet: str = "CHRISLOCAL", *extra: str
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.aet = aet
        self.extra = list(extra)
        self.log = data_dir.parent / f"listener-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, deadline: float = 20.0) -> Listener:
        """Start the process and wait until its port accepts connections."""
        command = [program("pacslistener"), "--aet", self.aet, "--port",
                   str(self.port), "--bind", "127.0.0.1", "--data-dir",
                   str(self.data_dir), *self.extra]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"pacslistener exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.05)  # readiness poll
        raise RuntimeError(f"pacslistener did not listen on {self.port}")

    def stop(self) -> int:
        """Send SIGTERM and return the exit code."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def kill(self) -> None:
        """Kill the process with SIGKILL."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def log_text(self) -> str:
        """Return what the listener logged."""
        return self.log.read_text() if self.log.exists() else ""

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
