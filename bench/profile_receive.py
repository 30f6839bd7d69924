"""Profile pacslistener's receive path with py-spy, and say where the time goes.

Starts pacslistener under ``py-spy record`` (raw format, every thread), sends a
data set to it with storescu (TCP_NODELAY=1), stops it, and prints the frames
that hold the most samples: by thread, by leaf frame (self) and by function
(total). ``--idle`` keeps the samples of threads that wait (wall-clock view:
sleeps and blocking reads show); without it only running threads are counted
(CPU view). ``--gil`` counts only the thread that holds the GIL.

    pip install py-spy
    python bench/profile_receive.py [--set small|ct] [--quick] [--idle] [--gil]
    python bench/profile_receive.py --summarize FILE.raw

The raw file stays in bench/work/profile/ for flamegraph tools.
"""

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import data
import receive
from targets import AET, NODELAY, PACSLISTENER, PYTHON, STORESCU

PROFILES = data.WORK / "profile"
TOP = 25
RATE = 250  # samples per second and thread
RECEIVE_THREADS = ("association reactor", "DUL reactor")


def start_profiled(port: int, out: Path, raw: Path, flags: list[str]) -> int:
    """Start pacslistener under py-spy; return py-spy's process id."""
    command = ["py-spy", "record", "--nonblocking", "--threads", "-r", str(RATE),
               "-f", "raw", "-o", str(raw), *flags, "--", PYTHON, PACSLISTENER,
               "--aet", AET, "--port", str(port), "--bind", "127.0.0.1",
               "--data-dir", str(out), "--log-level", "WARNING"]  # fmt: skip
    log = open(PROFILES / "py-spy.log", "ab")  # noqa: SIM115
    spy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    end = time.monotonic() + receive.LISTEN_TIMEOUT
    while time.monotonic() < end and not receive.listening(port):
        if spy.poll() is not None:
            raise RuntimeError(f"py-spy exited: see {PROFILES / 'py-spy.log'}")
        time.sleep(0.05)  # readiness poll
    return spy.pid


def listener_pid(spy_pid: int) -> int:
    """Return the pid of the pacslistener that py-spy started."""
    children = Path(f"/proc/{spy_pid}/task/{spy_pid}/children").read_text().split()
    if not children:
        raise RuntimeError("py-spy has no child process")
    return int(children[0])


def profile(spec: data.DataSet, raw: Path, flags: list[str]) -> float:
    """Profile one receive of ``spec``; return the sender's wall time."""
    files = data.ensure(spec)
    receive.warm(files)
    out = PROFILES / "out"
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    port = receive.free_port()
    spy = start_profiled(port, out, raw, flags)
    command = [STORESCU, "-R", "-aet", "BENCHSCU", "-aec", AET, "127.0.0.1",
               str(port), *(f.name for f in files)]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=spec.folder, env=dict(os.environ, **NODELAY))
    seconds = time.perf_counter() - started
    os.kill(listener_pid(spy), signal.SIGTERM)
    os.waitpid(spy, 0)
    if done.returncode != 0:
        raise RuntimeError(f"storescu failed with {done.returncode}")
    return seconds


def read_stacks(raw: Path) -> collections.Counter[tuple[str, ...]]:
    """Return the sample count of every stack in a py-spy raw file."""
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def short(frame: str) -> str:
    """Shorten a frame's path to its package: ``f (pynetdicom/dul.py:403)``."""
    frame = re.sub(r"\(/[^()]*site-packages/", "(", frame)
    return re.sub(r"\(/[^()]*/(pacscommon|pacslistener)/", r"(\1/", frame)


def role(thread_stack: tuple[str, ...]) -> str:
    """Name a thread by the pynetdicom loop it runs."""
    text = ";".join(thread_stack)
    for needle, name in (("_run_reactor", "association reactor"),
                         ("run_reactor", "DUL reactor"),
                         ("serve_forever", "server (accept)"),
                         ("<module>", "main")):  # fmt: skip
        if needle in text:
            return name
    return "other"


def summarize(raw: Path, rate: int = RATE) -> str:
    """Return the top frames of the receive threads in a raw profile, as Markdown."""
    stacks = read_stacks(raw)
    by_thread: dict[str, collections.Counter[tuple[str, ...]]] = {}
    for stack, count in stacks.items():
        by_thread.setdefault(role(stack), collections.Counter())[stack] += count
    lines = [f"{raw.name}: {sum(stacks.values())} samples at {rate} Hz", "",
             "| thread | samples | s |", "|---|---:|---:|"]  # fmt: skip
    for name, counter in sorted(by_thread.items()):
        n = sum(counter.values())
        lines.append(f"| {name} | {n} | {n / rate:.2f} |")
    for name in RECEIVE_THREADS:
        lines += ["", *top_frames(name, by_thread.get(name, collections.Counter()))]
    return "\n".join(lines)


def top_frames(thread: str, stacks: collections.Counter[tuple[str, ...]]) -> list[str]:
    """Return the top leaf frames and functions of one thread, as Markdown."""
    total = sum(stacks.values()) or 1
    leaves: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        leaves[short(stack[-1])] += count
        for frame in {re.sub(r":\d+\)$", ")", short(f)) for f in stack[1:]}:
            if not frame.startswith(("Thread.", "_bootstrap")):
                functions[frame] += count
    lines = [f"{thread}: {total} samples", ""]
    for title, counter in (("self (leaf frame)", leaves), ("total", functions)):
        lines += [f"| {title} | share |", "|---|---:|"]
        lines += [f"| `{n}` | {c / total:.1%} |" for n, c in counter.most_common(TOP)]
        lines.append("")
    return lines


def main(argv: list[str]) -> int:
    """Profile a receive (or summarize a profile) and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("small", "ct"), default="small")
    parser.add_argument("--quick", action="store_true", help="the quick sets")
    parser.add_argument("--idle", action="store_true", help="wall-clock view")
    parser.add_argument("--gil", action="store_true", help="GIL holder only")
    parser.add_argument("--summarize", type=Path, help="a raw file to summarize")
    options = parser.parse_args(argv)
    if options.summarize:
        print(summarize(options.summarize))
        return 0
    PROFILES.mkdir(parents=True, exist_ok=True)
    ct, small = data.data_sets(options.quick)
    spec = small if options.set == "small" else ct
    flags = ["--idle"] * options.idle + ["--gil"] * options.gil
    view = "gil" if options.gil else "idle" if options.idle else "cpu"
    raw = PROFILES / f"{spec.name}-{spec.count}-{view}.raw"
    seconds = profile(spec, raw, flags)
    print(f"{spec.count} instances in {seconds:.2f} s under py-spy ({view} view)\n")
    print(summarize(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
