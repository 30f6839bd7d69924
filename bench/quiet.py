"""Tell how much CPU other processes used while the benchmark ran.

The machine has 2 cores and is shared: a test suite started by someone else
during a run slows it down. Each run records the CPU time the whole machine
used (``/proc/stat``) minus the CPU time of the benchmark's own children
(``getrusage``), and a run waits, for a bounded time, until the machine is idle.
Kernel threads that work for the benchmark (writeback, for example) count as
"other", so small figures are noise; seconds of it mean a disturbed run.
"""

import os
import resource
import time
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")
QUIET_SHARE = 0.05  # of the whole machine
QUIET_SAMPLE = 0.5  # seconds
QUIET_WAIT = 30.0  # seconds at most


def machine_busy() -> float:
    """Return the CPU-seconds the machine has spent busy since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICK


def own_cpu() -> float:
    """Return the CPU-seconds of this process and its waited-for children."""
    seconds = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        seconds += usage.ru_utime + usage.ru_stime
    return seconds


@dataclass
class OtherCpu:
    """Counts the CPU-seconds others use between ``start`` and ``stop``."""

    busy: float = 0.0
    own: float = 0.0

    def start(self) -> None:
        """Begin counting."""
        self.busy, self.own = machine_busy(), own_cpu()

    def stop(self) -> float:
        """Return the CPU-seconds used by others since ``start``."""
        return max(0.0, (machine_busy() - self.busy) - (own_cpu() - self.own))


def wait_until_quiet() -> bool:
    """Wait until others use under 5% of the machine; say whether they did."""
    share = QUIET_SHARE * (os.cpu_count() or 1) * QUIET_SAMPLE
    end = time.monotonic() + QUIET_WAIT
    while time.monotonic() < end:
        counter = OtherCpu()
        counter.start()
        time.sleep(QUIET_SAMPLE)  # a sample of the machine's load
        if counter.stop() < share:
            return True
    return False
