"""Pull benchmark: pacsretrieve against DCMTK movescu and getscu, CT series.

An Orthanc (``TCP_NODELAY=1``, from tests/orthanc.py) holds the 500-instance CT
series of bench/data.py; its storage and index are cached in
``bench/work/orthanc-pull-ct-500/``. Each run times, in turn:

- ``pacsretrieve --mode move``: C-MOVE to a pacslistener started (untimed) on an
  empty data directory, then the copy of the series into the output directory;
- DCMTK movescu, C-MOVE to DCMTK storescp (``-pdu 131072 +B -od DIR``, the
  receive benchmark's best, behind bench/inetd.py, TCP_NODELAY=1);
- ``pacsretrieve --mode get`` and DCMTK getscu (``-od DIR``), C-GET.

Each figure is the wall time of the timed command, from its start to its exit;
the median of the runs; a ratio the median of per-run ratios.

    python bench/pull.py [--runs N]

The Markdown table is printed and written to bench/RESULTS.md ("Pull").
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import data
import programs
import receive
import scratch
import targets
from quiet import wait_until_quiet
from timing import timed_run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from orthanc import OrthancServer  # noqa: E402

FOLDER = data.WORK / "orthanc-pull-ct-500"
LOADED = FOLDER / "loaded"
AET = "CHRISLOCAL"
SCP_AET = "BENCHSCP"
PACSQUERY = programs.program("pacsquery")
PACSRETRIEVE = programs.program("pacsretrieve")
MOVESCU = "/usr/bin/movescu"
GETSCU = "/usr/bin/getscu"
NODELAY = {"TCP_NODELAY": "1"}
TIMEOUT = 300.0
LISTENER = targets.Target("pull-pacslistener", "pacslistener", targets.storescu,
                          targets.listener())  # fmt: skip
STORESCP = targets.Target("pull-storescp", "storescp", targets.storescu,
                          targets.storescp("-aet", SCP_AET, "-pdu", "131072", "+B"),
                          NODELAY, "*", True, True)  # fmt: skip
LABELS = {
    "pacsretrieve-move": "pacsretrieve --mode move (to pacslistener, then copy)",
    "movescu": "DCMTK movescu to DCMTK storescp -pdu 131072 +B",
    "movescu-listener": "DCMTK movescu to pacslistener (the receive alone)",
    "pacsretrieve-get": "pacsretrieve --mode get",
    "getscu": "DCMTK getscu -od DIR",
}
REFERENCE = {
    "pacsretrieve-move": "movescu",
    "movescu-listener": "movescu",
    "pacsretrieve-get": "getscu",
}
# Log lines that end pacsretrieve's phases: start-up, then the transfer.
PHASE_ENDS = ("INFO pacsretrieve.main: pulling", "PACS reports")
PHASES = ("start-up (to its first log line)", "C-ECHO and C-MOVE or C-GET (to the "
          "final response)", "wait for the files, copy, report (to exit)")  # fmt: skip


def load(server: OrthancServer, files: list[Path]) -> None:
    """Upload the series unless the cached Orthanc already holds it."""
    if LOADED.exists() and server.instance_count() == len(files):
        return
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(server.upload, files))
    if server.instance_count() != len(files):
        raise RuntimeError(f"Orthanc holds {server.instance_count()} instances")
    LOADED.write_text(f"{len(files)}\n")


def fresh(path: Path) -> Path:
    """Empty ``path`` and flush old writes, so they do not land in the run."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()
    return path


def timed(command: list[str], env: dict[str, str], log: Path) -> float:
    """Run ``command``; return its wall time; fail if it fails."""
    with log.open("ab") as sink:
        done = timed_run(command, dict(os.environ, **env), TIMEOUT, stdout=sink)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {done.returncode}; see {log}")
    return done.seconds


def phases(log: Path, start: float, end: float) -> list[float]:
    """Return the seconds of each phase of one pacsretrieve run, from its log."""
    marks = [start]
    lines = log.read_text(errors="replace").splitlines()
    for needle in PHASE_ENDS:
        line = next(line for line in lines if needle in line)
        stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        marks.append(stamp.timestamp())
    marks.append(end)
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def count(folder: Path, pattern: str, expected: int) -> None:
    """Fail unless ``folder`` holds ``expected`` files matching ``pattern``."""
    found = sum(1 for p in folder.glob(pattern) if p.is_file())
    if found != expected:
        raise RuntimeError(f"{folder}: {found} files, not {expected}")


class Pull:
    """The Orthanc, the series, and a scratch folder: one method per target."""

    def __init__(self, server: OrthancServer, tmp: Path, total: int) -> None:
        self.server, self.tmp, self.total = server, tmp, total
        self.listener_port = server.modalities[AET][2]
        self.scp_port = server.modalities[SCP_AET][2]
        self.log = tmp / "pull.log"
        self.phases: dict[str, list[list[float]]] = {"move": [], "get": []}
        series = data.uid("bench", "ct", "series", 0)
        study = data.uid("bench", "ct", "study")
        self.keys = ["-k", "QueryRetrieveLevel=SERIES",
                     "-k", f"StudyInstanceUID={study}",
                     "-k", f"SeriesInstanceUID={series}"]  # fmt: skip
        self.query = tmp / "query"
        (tmp / "empty").mkdir()
        subprocess.run([PACSQUERY, "--pacs-port", str(server.dicom_port),
                        "--log-level", "WARNING", str(tmp / "empty"),
                        str(self.query)], check=True)  # fmt: skip

    def retrieve(self, mode: str, *extra: str) -> tuple[float, Path]:
        """Time one pacsretrieve run into an empty output folder."""
        out = fresh(self.tmp / f"retrieve-{mode}")
        command = [PACSRETRIEVE, "--pacs-port", str(self.server.dicom_port),
                   "--mode", mode, "--log-level", "INFO", *extra,
                   str(self.query), str(out)]  # fmt: skip
        log = self.tmp / f"retrieve-{mode}.log"
        log.unlink(missing_ok=True)
        start = time.time()
        seconds = timed(command, {}, log)
        self.phases[mode].append(phases(log, start, start + seconds))
        return seconds, out

    def pacsretrieve_move(self) -> float:
        """Time pacsretrieve --mode move against a fresh pacslistener."""
        data_dir = fresh(self.tmp / "listener-data")
        process = receive.start_server(LISTENER, self.listener_port, data_dir)
        try:
            seconds, out = self.retrieve("move", "--data-location", str(data_dir))
        finally:
            receive.stop_server(LISTENER, process, data_dir)
        count(out, "**/*.dcm", self.total)
        return seconds

    def movescu(self) -> float:
        """Time movescu with a fresh storescp as the destination."""
        out = fresh(self.tmp / "storescp")
        out.mkdir()
        process = receive.start_server(STORESCP, self.scp_port, out)
        command = [MOVESCU, "-S", "-aet", AET, "-aec", "ORTHANC", "-aem", SCP_AET,
                   *self.keys, "127.0.0.1", str(self.server.dicom_port)]  # fmt: skip
        try:
            seconds = timed(command, NODELAY, self.log)
        finally:
            receive.stop_server(STORESCP, process, out)
        count(out, "*", self.total)
        return seconds

    def movescu_listener(self) -> float:
        """Time movescu with a fresh pacslistener as the destination."""
        data_dir = fresh(self.tmp / "listener-data")
        process = receive.start_server(LISTENER, self.listener_port, data_dir)
        command = [MOVESCU, "-S", "-aet", SCP_AET, "-aec", "ORTHANC", "-aem", AET,
                   *self.keys, "127.0.0.1", str(self.server.dicom_port)]  # fmt: skip
        try:
            seconds = timed(command, NODELAY, self.log)
        finally:
            receive.stop_server(LISTENER, process, data_dir)
        count(data_dir, "*/*/*/*.dcm", self.total)
        return seconds

    def pacsretrieve_get(self) -> float:
        """Time pacsretrieve --mode get."""
        seconds, out = self.retrieve("get")
        count(out, "**/*.dcm", self.total)
        return seconds

    def getscu(self) -> float:
        """Time getscu into an empty folder."""
        out = fresh(self.tmp / "getscu")
        out.mkdir()
        command = [GETSCU, "-S", "-aet", AET, "-aec", "ORTHANC", "-od", str(out),
                   *self.keys, "127.0.0.1", str(self.server.dicom_port)]  # fmt: skip
        seconds = timed(command, NODELAY, self.log)
        count(out, "*", self.total)
        return seconds


def table(times: dict[str, list[float]], size: int, total: int) -> str:
    """Return the Markdown table of medians, throughput and ratios."""
    lines = ["| command | median s | MB/s | ratio | runs: s |",
             "|---|---:|---:|---:|---|"]  # fmt: skip
    for name, runs in times.items():
        median = statistics.median(runs)
        ratio = "-"
        if name in REFERENCE:
            pairs = zip(runs, times[REFERENCE[name]], strict=True)
            middle = statistics.median(a / b for a, b in pairs)
            ratio = f"{middle:.2f} x {REFERENCE[name]}"
        spread = ", ".join(f"{s:.2f}" for s in runs)
        lines.append(f"| {LABELS[name]} | {median:.2f} | {size / 1e6 / median:.0f} "
                     f"| {ratio} | {spread} |")  # fmt: skip
    return "\n".join(lines)


def phase_table(found: dict[str, list[list[float]]]) -> str:
    """Return the Markdown table of pacsretrieve's phases, medians of the runs."""
    lines = ["| pacsretrieve phase | --mode move s | --mode get s |",
             "|---|---:|---:|"]  # fmt: skip
    for number, label in enumerate(PHASES):
        cells = [statistics.median(run[number] for run in found[mode])
                 for mode in ("move", "get")]  # fmt: skip
        lines.append(f"| {label} | {cells[0]:.2f} | {cells[1]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Load the Orthanc, time every target, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args(argv)
    load_before = receive.load_average()
    files = data.ensure(data.CT_SERIES)
    size = data.volume(files)
    peers = {AET: (AET, "127.0.0.1", receive.free_port()),
             SCP_AET: (SCP_AET, "127.0.0.1", receive.free_port())}  # fmt: skip
    (data.WORK / "logs").mkdir(exist_ok=True)
    with OrthancServer(FOLDER, modalities=peers) as server, \
            tempfile.TemporaryDirectory(dir=scratch.root()) as folder:  # fmt: skip
        load(server, files)
        pull = Pull(server, Path(folder), len(files))
        times: dict[str, list[float]] = {name: [] for name in LABELS}
        quiet = []
        for _ in range(options.runs):
            for name in LABELS:
                quiet.append(wait_until_quiet())
                times[name].append(getattr(pull, name.replace("-", "_"))())
    text = "\n".join([
        receive.header(f"python bench/pull.py --runs {options.runs}",
                       options.runs, load_before).split("\n- Method:")[0],
        f"- Data: {len(files)} instances of 512x512 16-bit CT, "
        f"{size / 1e6:.1f} MB, one series (bench/work/ct-500), in Debian's "
        "Orthanc 1.10.1 with TCP_NODELAY=1",
        "- Method: wall time of the timed command from start to exit (the "
        "receivers are started before it on an empty folder and stopped after "
        "it, untimed); DCMTK tools with TCP_NODELAY=1; pacsretrieve's figure "
        "includes its C-ECHO, the C-FIND of --mode get for the SOP classes, "
        "the wait for the files and the copy into its output folder; the "
        "programs run from "
        "bench/work/venv, installed as the images install them (bench/"
        "programs.py); the files are checked "
        "after every run; os.sync() before each; runs interleaved, median of "
        f"{options.runs}. Runs that started on a busy machine: "
        f"{quiet.count(False)} of {len(quiet)}.",
        "",
        table(times, size, len(files)),
        "",
        "Where pacsretrieve's time goes (from its INFO log's timestamps, same runs):",
        "",
        phase_table(pull.phases),
    ])  # fmt: skip
    print(text)
    receive.write_results(text, "Pull")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
