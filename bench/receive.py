"""Receive benchmark: how fast each storage SCP takes in a data set.

For each data set (bench/data.py) DCMTK's storescu, and then a pynetdicom
sender (bench/pynet_sender.py), sends every file over one association (with
TCP_NODELAY on) to each receiver in turn, and the machine's limits are timed on
the same byte volume. A ratio compares receivers fed by the same sender. Runs
are interleaved (A, B, C, A, B, C, ...); each figure is the median over the
runs, and each ratio the median of per-run ratios. Every run starts a fresh
receiver on an empty output folder and stops it after reading its peak resident
memory (VmHWM). No receiver fsyncs.

    python bench/receive.py [--quick] [--runs N] [--targets a,b,...] [--section S]

The Markdown table is printed and written to bench/RESULTS.md ("Receive").
"""

import argparse
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import data
import pydicom
import pynetdicom
import scratch
from quiet import OtherCpu, wait_until_quiet
from targets import DEFAULT_TARGETS, NODELAY, STORESCU, TARGETS, Target, peak_file
from timing import timed_run

WORK = data.WORK
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "Receive"
QUICK_SECTION = "Receive (--quick)"  # so that a check never replaces a full run
SENDER_TIMEOUT = 300.0
LISTEN_TIMEOUT = 20.0


@dataclass(frozen=True)
class Measurement:
    """One timed run of one target."""

    seconds: float
    peak_kib: int | None
    server_cpu: float | None  # CPU-seconds of the receiver, if there is one
    sender_cpu: float  # CPU-seconds of the timed command
    other_cpu: float  # CPU-seconds other processes used meanwhile
    quiet: bool  # the machine was idle when the run started


def children_cpu() -> float:
    """Return the CPU-seconds of this process's waited-for children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    """Return a loopback port that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Say whether a socket listens on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":
                return True
    return False


def peak_kib(pid: int) -> int | None:
    """Return a process's peak resident memory in KiB, from /proc."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def start_server(target: Target, port: int, out: Path) -> subprocess.Popen[bytes]:
    """Start a target's server and wait until it listens."""
    assert target.server is not None
    log = open(WORK / "logs" / f"{target.name}.log", "ab")  # noqa: SIM115
    env = dict(os.environ, **target.server_env)
    process = subprocess.Popen(
        target.server(port, out), stdout=log, stderr=subprocess.STDOUT, env=env
    )
    log.close()
    end = time.monotonic() + LISTEN_TIMEOUT
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {process.returncode}")
        if listening(port):
            return process
        time.sleep(0.02)  # readiness poll, outside the timed window
    process.kill()
    raise RuntimeError(f"{target.name} did not listen on port {port}")


def stop_server(
    target: Target, process: subprocess.Popen[bytes], out: Path
) -> tuple[int | None, float]:
    """Read the server's peak memory, stop it; return the peak and its CPU time."""
    if target.one_shot:
        return finish_one_shot(target, process, out)
    peak = peak_kib(process.pid)
    before = children_cpu()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return peak, children_cpu() - before


def finish_one_shot(
    target: Target, process: subprocess.Popen[bytes], out: Path
) -> tuple[int, float]:
    """Wait for a server that ends with its association; return its report."""
    try:
        code = process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise RuntimeError(f"{target.name} did not end with its association") from None
    if code != 0:
        raise RuntimeError(f"{target.name} exited with {code}")
    peak, cpu = peak_file(out).read_text().split()
    return int(peak), float(cpu)


def fresh_output(target: Target) -> Path:
    """Return the target's output folder, emptied, with old writes flushed."""
    out = scratch.root() / "out" / target.name
    shutil.rmtree(out, ignore_errors=True)
    peak_file(out).unlink(missing_ok=True)
    if target.make_output or target.server is None:
        out.mkdir(parents=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Dirty pages of the previous run must not be written back during this one.
    os.sync()
    return out


def time_sender(command: list[str], cwd: Path) -> tuple[float, float]:
    """Run the timed command; return its wall time and its CPU time."""
    env = dict(os.environ, **NODELAY)
    with tempfile.TemporaryFile() as output:
        done = timed_run(command, env, SENDER_TIMEOUT, stdout=output, cwd=cwd)
        if done.returncode != 0:
            output.seek(0)
            said = output.read().decode(errors="replace")[-2000:]
            raise RuntimeError(
                f"{shlex.join(command[:8])} ... failed ({done.returncode}): {said}"
            )
    return done.seconds, done.cpu


def check_stored(target: Target, out: Path, expected: int) -> None:
    """Raise unless the receiver stored every instance."""
    if target.stored_glob is None:
        return
    stored = sum(1 for p in out.glob(target.stored_glob) if p.is_file())
    if stored != expected:
        raise RuntimeError(f"{target.name} stored {stored} of {expected} instances")


def measure(target: Target, folder: Path, names: list[str], size: int) -> Measurement:
    """Time one run of ``target`` on one data set."""
    out = fresh_output(target)
    port = free_port()
    quiet = wait_until_quiet()
    other = OtherCpu()
    other.start()
    server = start_server(target, port, out) if target.server else None
    try:
        command = target.sender(port, out, folder, names, size)
        seconds, sender_cpu = time_sender(command, folder)
    finally:
        peak, server_cpu = stop_server(target, server, out) if server else (None, None)
    other_cpu = other.stop()
    check_stored(target, out, len(names))
    return Measurement(seconds, peak, server_cpu, sender_cpu, other_cpu, quiet)


def warm(files: list[Path]) -> int:
    """Read every file once so that all runs read from the page cache."""
    return sum(len(f.read_bytes()) for f in files)


def run_set(
    spec: data.DataSet, targets: list[Target], runs: int
) -> dict[str, list[Measurement]]:
    """Time every target ``runs`` times on one data set, interleaved."""
    files = data.ensure(spec)
    size = warm(files)
    names = [f.name for f in files]
    results: dict[str, list[Measurement]] = {t.name: [] for t in targets}
    for run in range(runs):
        for target in targets:
            m = measure(target, spec.folder, names, size)
            results[target.name].append(m)
            print(f"  {spec.name} run {run + 1}/{runs} {target.name}: "
                  f"{m.seconds:.2f} s, others {m.other_cpu:.2f} CPU-s",
                  file=sys.stderr)  # fmt: skip
    shutil.rmtree(scratch.root() / "out", ignore_errors=True)
    return results


def ratio(results: dict[str, list[Measurement]], name: str) -> float | None:
    """Return the median of the per-run ratios of ``name`` to its reference."""
    reference = results.get(TARGETS[name].reference)
    if not reference:
        return None
    pairs = zip(results[name], reference, strict=True)
    return statistics.median(m.seconds / r.seconds for m, r in pairs)


def table(spec: data.DataSet, size: int, results: dict[str, list[Measurement]]) -> str:
    """Return the Markdown table of one data set."""
    lines = [
        f"**{spec.name}**: {spec.count} instances of {spec.size}x{spec.size} "
        f"16-bit, {size / 1e6:.1f} MB ({size / spec.count / 1e3:.1f} KB each), "
        f"{spec.series} series",
        "",
        "| target | median s | MB/s | instances/s | x storescp (same sender) "
        "| peak RSS MB "
        "| receiver CPU s | sender CPU s | runs: s (others' CPU-s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, ms in results.items():
        lines.append(row(TARGETS[name].label, spec, size, ms, ratio(results, name)))
    return "\n".join(lines)


def median_of(values: list[float | None], form: str) -> str:
    """Return the median of the values that are known, formatted, or ``-``."""
    known = [v for v in values if v is not None]
    return format(statistics.median(known), form) if known else "-"


def row(
    label: str,
    spec: data.DataSet,
    size: int,
    ms: list[Measurement],
    factor: float | None,
) -> str:
    """Return one table row: medians, then every run."""
    seconds = statistics.median(m.seconds for m in ms)
    peak = median_of([m.peak_kib / 1024 if m.peak_kib else None for m in ms], ".0f")
    runs = ", ".join(
        f"{m.seconds:.2f} ({m.other_cpu:.1f}){'' if m.quiet else '*'}" for m in ms
    )
    cells = [
        label,
        f"{seconds:.2f}",
        f"{size / seconds / 1e6:.0f}",
        f"{spec.count / seconds:.0f}",
        "-" if factor is None else f"{factor:.2f}",
        peak,
        median_of([m.server_cpu for m in ms], ".2f"),
        median_of([m.sender_cpu for m in ms], ".2f"),
        runs,
    ]
    return f"| {' | '.join(cells)} |"


def dcmtk_version() -> str:
    """Return DCMTK's version as storescu reports it."""
    done = subprocess.run([STORESCU, "--version"], capture_output=True, text=True)
    first = done.stdout.splitlines()[0] if done.stdout else "unknown"
    return first.strip("$ ").replace("dcmtk: ", "")


def load_average() -> str:
    """Return the 1-minute load average, to show how quiet the machine was."""
    with open("/proc/loadavg") as load:
        return load.read().split()[0]


def code_version() -> str:
    """Return the commit of the code measured, and whether it had changes."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    changes = subprocess.run([*git, "status", "--porcelain", "--", ":!bench"],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    return f"{head or 'unknown'}{' with uncommitted changes' if changes else ''}"


def header(command: str, runs: int, load_before: str) -> str:
    """Return the lines that say where, when, with what and how it was run."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return "\n".join([
        f"- Command: `{command}`",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}",
        f"- Code: commit {code_version()}",
        f"- Load average (1 min) before and after: {load_before}, "
        f"{load_average()}",
        f"- Versions: DCMTK {dcmtk_version()}, pynetdicom {pynetdicom.__version__}, "
        f"pydicom {pydicom.__version__}, Python {platform.python_version()}",
        f"- Written on: {scratch.description()}",
        f"- Method: storescu -R (or, in the rows that say so, a pynetdicom "
        "sender, bench/pynet_sender.py), one association for all files, "
        "TCP_NODELAY=1 for DCMTK on both sides and set by the pynetdicom sender; "
        "a ratio is to storescp fed by the same sender; wall time from the "
        "sender's start to its exit; "
        f"median of {runs} interleaved runs; every receiver starts fresh on an "
        "empty output folder, after a sync; "
        "no receiver fsyncs (dd does: it is the disk's limit); peak RSS is the "
        "receiver's VmHWM (for the loopback limit, the sink's). Each run waits "
        "(30 s at most) until other processes use under 5% of the machine; a "
        "run marked * started without that. In brackets: the CPU-seconds "
        "that processes other than the benchmark's (and kernel threads) used "
        "during the run; more than about a second means a disturbed run.",
    ])  # fmt: skip


def write_results(text: str, section: str = SECTION) -> None:
    """Put ``text`` in RESULTS.md as ``section``, in place, keeping the others."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts = old.split("\n## ")
    new = f"{section}\n\n{text}\n"
    titles = [p.splitlines()[0].strip() for p in parts[1:]]
    if section in titles:
        parts[1 + titles.index(section)] = new
    else:
        parts.append(new)
    parts = [p.rstrip("\n") + "\n" for p in parts]
    RESULTS.write_text("\n## ".join(parts))


def parse(argv: list[str]) -> argparse.Namespace:
    """Return the options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one run of the small sets, to check that it works",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="runs of each target (default 3, 1 with --quick)",
    )
    parser.add_argument(
        "--targets",
        default="",
        help="comma-separated, for every data set (default: each set's own "
        f"list in targets.py), from: {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--section",
        default=None,
        help=f"the section of RESULTS.md to write (default {SECTION!r}, or "
        f"{QUICK_SECTION!r} with --quick)",
    )
    return parser.parse_args(argv)


def chosen_targets(option: str, spec: data.DataSet) -> list[Target]:
    """Return the targets to time on ``spec``: the option's, or the set's own."""
    names = [n.strip() for n in option.split(",") if n.strip()]
    return [TARGETS[n] for n in names or DEFAULT_TARGETS[spec.name]]


def main(argv: list[str]) -> int:
    """Run the benchmark, print the tables, and write them to RESULTS.md."""
    options = parse(argv)
    runs = max(1, options.runs or (1 if options.quick else 3))
    unknown = [n for n in options.targets.split(",") if n and n not in TARGETS]
    if unknown:
        print(f"error: unknown targets {unknown}; use {list(TARGETS)}", file=sys.stderr)
        return 2
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "bench/receive.py", *argv])
    load_before = load_average()
    tables = []
    for spec in data.data_sets(options.quick):
        results = run_set(spec, chosen_targets(options.targets, spec), runs)
        tables.append(table(spec, data.volume(data.ensure(spec)), results))
    text = "\n\n".join([header(command, runs, load_before), *tables])
    print(text)
    write_results(
        text, options.section or (QUICK_SECTION if options.quick else SECTION)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
