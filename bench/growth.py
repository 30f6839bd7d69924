"""Growth benchmark: receive and pull of 100, 1000 and 5000 instances.

Shows how time and peak memory grow with the number of instances. Three series
of 64x64 16-bit instances (9.5 KB each) are made by ``data.py``:

- receive: storescu (TCP_NODELAY=1) sends each series over one association to
  a fresh pacslistener and, for the ratio, to DCMTK storescp at its best
  settings; peak RSS is the receiver's VmHWM.
- pull: pacsretrieve --mode move of each series from Debian's Orthanc (cached in
  ``bench/work/orthanc-growth``, loaded once) to a fresh pacslistener, then
  the copy into its output folder; peak RSS of the listener and of
  pacsretrieve; and, for the ratio, DCMTK movescu to storescp.

Runs are interleaved; figures are medians of ``--runs`` (default 3).

    python bench/growth.py [--runs N]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import data
import pull
import receive
import scratch
import targets
from quiet import wait_until_quiet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from orthanc import OrthancServer  # noqa: E402

SIZES = (100, 1000, 5000)
SETS = {n: data.DataSet(f"grow{n}", n, 64, 1) for n in SIZES}
FOLDER = data.WORK / "orthanc-growth"
TIME = "/usr/bin/time"
RECEIVERS = ("pacslistener", "storescp")


@dataclass
class Run:
    """One timed run: seconds and the peak RSS (KiB) of each process measured."""

    seconds: float
    peaks: dict[str, int | None]


def receive_runs(runs: int) -> dict[tuple[str, int], list[Run]]:
    """Time each receiver on each size, interleaved."""
    chosen = [targets.TARGETS[name] for name in RECEIVERS]
    found: dict[tuple[str, int], list[Run]] = {}
    for run in range(runs):
        for n, spec in SETS.items():
            files = data.ensure(spec)
            size = receive.warm(files)
            names = [f.name for f in files]
            for target in chosen:
                m = receive.measure(target, spec.folder, names, size)
                found.setdefault((target.name, n), []).append(
                    Run(m.seconds, {"receiver": m.peak_kib})
                )
                print(f"  receive {n} run {run + 1}/{runs} {target.name}: "
                      f"{m.seconds:.2f} s", file=sys.stderr)  # fmt: skip
    return found


def load(server: OrthancServer, files: list[Path]) -> None:
    """Upload the three series unless the cached Orthanc already holds them."""
    if server.instance_count() == len(files):
        return
    for path in files:
        server.upload(path)
    if server.instance_count() != len(files):
        raise RuntimeError(f"Orthanc holds {server.instance_count()} instances")


class GrowthPull:
    """pacsretrieve --mode move of one series to a fresh pacslistener."""

    def __init__(self, server: OrthancServer, tmp: Path) -> None:
        self.server, self.tmp = server, tmp
        self.listener_port = server.modalities[pull.AET][2]
        self.scp_port = server.modalities[pull.SCP_AET][2]
        (tmp / "empty").mkdir()
        self.queries: dict[int, Path] = {}
        for n in SIZES:
            query = tmp / f"query-{n}"
            series = data.uid("bench", SETS[n].name, "series", 0)
            subprocess.run([pull.PACSQUERY, "--pacs-port", str(server.dicom_port),
                            "--series-uid", series, "--log-level", "WARNING",
                            str(tmp / "empty"), str(query)], check=True)  # fmt: skip
            self.queries[n] = query

    def movescu(self, n: int) -> float:
        """Time DCMTK movescu of the series to a fresh storescp, for the ratio."""
        out = pull.fresh(self.tmp / "storescp")
        out.mkdir()
        wait_until_quiet()
        process = receive.start_server(pull.STORESCP, self.scp_port, out)
        series = data.uid("bench", SETS[n].name, "series", 0)
        study = data.uid("bench", SETS[n].name, "study")
        command = [pull.MOVESCU, "-S", "-aet", pull.AET, "-aec", "ORTHANC",
                   "-aem", pull.SCP_AET, "-k", "QueryRetrieveLevel=SERIES",
                   "-k", f"StudyInstanceUID={study}",
                   "-k", f"SeriesInstanceUID={series}",
                   "127.0.0.1", str(self.server.dicom_port)]  # fmt: skip
        try:
            seconds = pull.timed(command, pull.NODELAY, self.tmp / "movescu.log")
        finally:
            receive.stop_server(pull.STORESCP, process, out)
        pull.count(out, "*", n)
        return seconds

    def run(self, n: int) -> Run:
        """Time one pull of the series of ``n`` instances."""
        data_dir = pull.fresh(self.tmp / "listener-data")
        out = pull.fresh(self.tmp / "out")
        peak_file = self.tmp / "retrieve-peak"
        wait_until_quiet()
        process = receive.start_server(pull.LISTENER, self.listener_port, data_dir)
        command = [TIME, "-f", "%M", "-o", str(peak_file), pull.PACSRETRIEVE,
                   "--pacs-port", str(self.server.dicom_port), "--mode", "move",
                   "--log-level", "WARNING", "--data-location", str(data_dir),
                   str(self.queries[n]), str(out)]  # fmt: skip
        try:
            seconds = pull.timed(command, {}, self.tmp / "retrieve.log")
        finally:
            listener_peak, _ = receive.stop_server(pull.LISTENER, process, data_dir)
        pull.count(out, "**/*.dcm", n)
        retrieve_peak = int(peak_file.read_text().split()[-1])
        return Run(seconds, {"receiver": listener_peak, "pacsretrieve": retrieve_peak})


def pull_runs(runs: int) -> tuple[dict[int, list[Run]], dict[int, list[float]]]:
    """Time the pull of each size, and movescu's, interleaved."""
    files = [f for n in SIZES for f in data.ensure(SETS[n])]
    peers = {
        name: (name, "127.0.0.1", receive.free_port())
        for name in (pull.AET, pull.SCP_AET)
    }
    found: dict[int, list[Run]] = {n: [] for n in SIZES}
    dcmtk: dict[int, list[float]] = {n: [] for n in SIZES}
    with OrthancServer(FOLDER, modalities=peers) as server, \
            tempfile.TemporaryDirectory(dir=scratch.root()) as folder:  # fmt: skip
        load(server, files)
        growth = GrowthPull(server, Path(folder))
        for run in range(runs):
            for n in SIZES:
                found[n].append(growth.run(n))
                dcmtk[n].append(growth.movescu(n))
                print(f"  pull {n} run {run + 1}/{runs}: "
                      f"{found[n][-1].seconds:.2f} s, movescu "
                      f"{dcmtk[n][-1]:.2f} s", file=sys.stderr)  # fmt: skip
    return found, dcmtk


def mb(kib: int | None) -> str:
    """Return KiB as MB text, or "-"."""
    return "-" if kib is None else f"{kib / 1024:.0f}"


def largest_peak(runs: list[Run], key: str) -> int | None:
    """Return the largest peak of the runs (memory must stay flat at its worst)."""
    peaks = [r.peaks.get(key) for r in runs]
    known = [p for p in peaks if p is not None]
    return max(known) if known else None


def receive_table(found: dict[tuple[str, int], list[Run]]) -> str:
    """Return the Markdown table of the receive runs."""
    lines = ["| instances | pacslistener s | ms per instance | storescp s | "
             "x storescp | pacslistener peak RSS MB | runs: s |",
             "|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for n in SIZES:
        ours, theirs = found[("pacslistener", n)], found[("storescp", n)]
        seconds = statistics.median(r.seconds for r in ours)
        reference = statistics.median(r.seconds for r in theirs)
        pairs = zip(ours, theirs, strict=True)
        ratios = statistics.median(a.seconds / b.seconds for a, b in pairs)
        spread = ", ".join(f"{r.seconds:.2f}" for r in ours)
        lines.append(f"| {n} | {seconds:.2f} | {seconds / n * 1000:.2f} | "
                     f"{reference:.2f} | {ratios:.2f} | "
                     f"{mb(largest_peak(ours, 'receiver'))} | {spread} |")  # fmt: skip
    return "\n".join(lines)


def pull_table(found: dict[int, list[Run]], dcmtk: dict[int, list[float]]) -> str:
    """Return the Markdown table of the pull runs."""
    lines = ["| instances | pacsretrieve s | ms per instance | movescu + storescp s "
             "| x movescu | pacslistener peak RSS MB | pacsretrieve peak RSS MB "
             "| runs: s |",
             "|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for n in SIZES:
        runs = found[n]
        seconds = statistics.median(r.seconds for r in runs)
        reference = statistics.median(dcmtk[n])
        pairs = zip(runs, dcmtk[n], strict=True)
        ratio = statistics.median(r.seconds / d for r, d in pairs)
        spread = ", ".join(f"{r.seconds:.2f}" for r in runs)
        listener = largest_peak(runs, "receiver")
        retrieve = largest_peak(runs, "pacsretrieve")
        lines.append(f"| {n} | {seconds:.2f} | {seconds / n * 1000:.2f} | "
                     f"{reference:.2f} | {ratio:.2f} | "
                     f"{mb(listener)} | {mb(retrieve)} | {spread} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Time every size, print and record the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args(argv)
    load_before = receive.load_average()
    (data.WORK / "logs").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    received = receive_runs(options.runs)
    pulled, dcmtk = pull_runs(options.runs)
    text = "\n".join([
        receive.header(f"python bench/growth.py --runs {options.runs}",
                       options.runs, load_before).split("\n- Method:")[0],
        "- Data: one series each of 100, 1000 and 5000 instances of 64x64 "
        "16-bit (9.5 KB each), made by bench/data.py",
        "- Method: receive as in the Receive section (storescu -R over one "
        "association, TCP_NODELAY=1, no fsync, fresh receiver per run); pull as "
        "in the Pull section (pacsretrieve --mode move from Debian's Orthanc "
        "1.10.1 to a fresh pacslistener, then the copy; against DCMTK movescu "
        "to storescp -pdu 131072 +B, TCP_NODELAY=1); medians of "
        f"{options.runs} interleaved runs; peak RSS is the largest VmHWM of the "
        "runs (pacsretrieve's from /usr/bin/time). The whole benchmark took "
        f"{time.monotonic() - started:.0f} s.",
        "",
        "Receive:",
        "",
        receive_table(received),
        "",
        "Pull:",
        "",
        pull_table(pulled, dcmtk),
    ])  # fmt: skip
    print(text)
    receive.write_results(text, "Growth")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
