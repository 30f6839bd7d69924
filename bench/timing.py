"""Time one command from its start to its exit, without polling for the exit.

``subprocess.run(..., timeout=T)`` waits for a child by polling ``waitpid``
with a sleep that grows to 50 ms, so a figure taken around it is late by up to
50 ms, at random (the bench's figures before this module came in steps of 50
ms). Here the wait blocks in ``os.wait4``, which returns the moment the child
exits, with the child's own CPU time; a timer kills a child that overruns.
"""

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Timed:
    """How one run of a command went."""

    seconds: float  # wall time, from just before the start to the exit
    returncode: int
    cpu: float  # the command's own user and system CPU-seconds


def timed_run(
    command: list[str],
    env: dict[str, str],
    timeout: float,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = subprocess.STDOUT,
    cwd: Path | None = None,
) -> Timed:
    """Run ``command`` to its end; kill it after ``timeout`` seconds."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=cwd)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Timed(seconds, process.returncode, usage.ru_utime + usage.ru_stime)
