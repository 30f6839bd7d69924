"""Helpers of the reliability tests, and the script that turns them into figures.

``python tests/reliability.py`` runs ``test_faults.py``, ``test_load.py`` and
``test_bad_inputs.py`` with a JUnit XML report (pytest's own ``--junitxml``,
no plugin), reads each case's outcome and the ``observed`` property each test
records with ``record_property``, and writes ``tests/RELIABILITY.md``.

The test modules import the helpers: a cloned series, a pacsretrieve run as a
real process, the checks that a data volume holds only whole files, and a TCP
relay that aborts an association in the middle of an instance.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from pydicom import dcmread  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from corpus import read_dataset, source_path  # noqa: E402
from listener import program  # noqa: E402
from pacscommon.results import SUCCESS_FILE, encode_rows  # noqa: E402

RUN_TIMEOUT = 180.0  # seconds any one program run may take in these tests
TEST_FILES = ("test_faults.py", "test_load.py", "test_bad_inputs.py")
FIGURES = HERE / "RELIABILITY.md"


# -- data ------------------------------------------------------------------


@dataclass(frozen=True)
class ClonedSeries:
    """A series of clones of one real slice, written as files."""

    StudyInstanceUID: str
    SeriesInstanceUID: str
    files: tuple[Path, ...]

    def row(self) -> dict[str, str]:
        """Return the series as a results row."""
        return {
            "StudyInstanceUID": self.StudyInstanceUID,
            "SeriesInstanceUID": self.SeriesInstanceUID,
            "NumberOfSeriesRelatedInstances": str(len(self.files)),
        }


def clone_series(dest: Path, count: int, source: str = "CT_small.dcm") -> ClonedSeries:
    """Write ``count`` clones of a packaged slice, each with fresh UIDs."""
    dest.mkdir(parents=True, exist_ok=True)
    ds = read_dataset(source_path(source))
    study, series = generate_uid(), generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    files = []
    for n in range(count):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        path = dest / f"{n:05d}.dcm"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return ClonedSeries(study, series, tuple(files))


def write_results(inputdir: Path, rows: list[dict[str, str]]) -> Path:
    """Write a success.txt of ``rows`` as pacsquery would."""
    inputdir.mkdir(parents=True, exist_ok=True)
    document = {"status": "success", "complete": True, "data": encode_rows(rows)}
    path = inputdir / SUCCESS_FILE
    path.write_text(json.dumps(document))
    return path


# -- runs of pacsretrieve ----------------------------------------------------


@dataclass
class Run:
    """One finished run of a program."""

    code: int
    stderr: str
    seconds: float
    outputdir: Path | None = None

    @property
    def errors(self) -> list[str]:
        """Return the ``error:`` lines on stderr."""
        return [ln for ln in self.stderr.splitlines() if ln.startswith("error:")]

    @property
    def crashed(self) -> bool:
        """Return whether a Python traceback reached stderr."""
        return "Traceback (most recent call last)" in self.stderr

    def report(self) -> dict[str, Any]:
        """Return the report.json the run wrote."""
        assert self.outputdir is not None
        data: dict[str, Any] = json.loads((self.outputdir / "report.json").read_text())
        return data


def retrieve_command(pacs_port: int, data_dir: Path, *args: str) -> list[str]:
    """Return a pacsretrieve command line against a PACS on loopback."""
    return [program("pacsretrieve"), "--pacs-port", str(pacs_port),
            "--data-location", str(data_dir), "--retry-delay", "0.2",
            *args]  # fmt: skip


class Background:
    """A program started now and finished later, with a bounded wait."""

    def __init__(self, command: list[str], outputdir: Path | None = None) -> None:
        self.outputdir = outputdir
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TCP_NODELAY": "1"},
        )

    def finish(self, timeout: float = RUN_TIMEOUT) -> Run:
        """Wait for the program (kill it past ``timeout``) and return its run."""
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
            raise AssertionError(f"no answer in {timeout} s (a hang): {err}") from None
        seconds = time.monotonic() - self.started
        return Run(self.process.returncode, err, seconds, self.outputdir)


def run_program(command: list[str], outputdir: Path | None = None) -> Run:
    """Run a program to its end, bounded in time."""
    return Background(command, outputdir).finish()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not seen within {timeout} s: {what}")
        time.sleep(0.005)  # a readiness poll, not a wait for the data


# -- checks of a data volume and an output directory -------------------------


def tree_files(root: Path) -> list[Path]:
    """Return the instance files of a series tree (not .incoming or .index)."""
    skip = {".incoming", ".index", ".pacsretrieve-staging", ".pacsretrieve-data"}
    return sorted(
        p for p in root.rglob("*.dcm") if not skip & set(p.relative_to(root).parts)
    )


def pixel_length(ds: Any) -> int:
    """Return the PixelData length an uncompressed data set must have."""
    frames = int(ds.get("NumberOfFrames") or 1)
    bits = int(ds.BitsAllocated)
    return (ds.Rows * ds.Columns * ds.SamplesPerPixel * frames * bits + 7) // 8


def check_whole_files(root: Path) -> dict[str, Path]:
    """Assert each file in the tree parses and has all its pixels; map SOP UIDs."""
    by_uid: dict[str, Path] = {}
    for path in tree_files(root):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ds = dcmread(path)
        syntax = ds.file_meta.TransferSyntaxUID
        if "PixelData" in ds and not syntax.is_compressed:
            assert len(ds.PixelData) == pixel_length(ds), f"{path} cut short"
        uid = str(ds.SOPInstanceUID)
        assert uid not in by_uid, f"{uid} twice: {by_uid[uid]} and {path}"
        by_uid[uid] = path
    return by_uid


def check_volume(data_dir: Path) -> dict[str, Path]:
    """Assert the data volume holds whole files only and nothing in .incoming."""
    by_uid = check_whole_files(data_dir)
    leftovers = list((data_dir / ".incoming").iterdir())
    assert leftovers == [], f".incoming holds {leftovers}"
    return by_uid


def check_output_marked(run: Run) -> dict[str, Any]:
    """Assert no series folder in the output is partial unless the report says so.

    Return the report.
    """
    assert run.outputdir is not None
    report = run.report()
    series = {s["path"]: s for s in report["series"] if s["path"]}
    folders = {p.parent.relative_to(run.outputdir).as_posix()
               for p in tree_files(run.outputdir)}  # fmt: skip
    for folder in folders:
        assert folder in series, f"{folder} is in the output but not in the report"
        entry = series[folder]
        count = len(list((run.outputdir / folder).glob("*.dcm")))
        assert count == entry["arrived"] == len(entry["instances"])
        if count != entry["expected"]:
            assert entry["complete"] is False and report["complete"] is False
    return report


# -- a relay that aborts an association in the middle of an instance ---------

A_ABORT = b"\x07\x00" + struct.pack(">I", 4) + b"\x00\x00\x00\x00"
P_DATA_TF = 0x04


@dataclass
class AbortingRelay:
    """Forward TCP connections to ``target_port``; abort one mid-instance.

    Once ``abort_after`` data-set fragments have gone through, the relay waits
    for the next fragment that is not the last of its data set, sends A-ABORT
    (PS3.8 9.3.8) to both sides instead of it and closes both connections.
    ``abort_after`` None forwards everything.
    """

    target_port: int
    abort_after: int | None = None
    port: int = 0
    aborted: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        self.port = self._server.getsockname()[1]
        self._fragments = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """Stop accepting connections."""
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(
                target=self._pdus, args=(client, upstream), daemon=True
            ).start()
            threading.Thread(
                target=self._bytes, args=(upstream, client), daemon=True
            ).start()

    def _bytes(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes one way until either side closes."""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        _close(source, sink)

    def _pdus(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy PDUs from the sender, aborting at the chosen fragment."""
        try:
            while True:
                header = _read_exact(source, 6)
                body = _read_exact(source, struct.unpack(">I", header[2:])[0])
                if header[0] == P_DATA_TF and self._should_abort(body):
                    sink.sendall(A_ABORT)
                    source.sendall(A_ABORT)
                    self.aborted.set()
                    break
                sink.sendall(header + body)
        except (OSError, EOFError):
            pass
        _close(source, sink)

    def _should_abort(self, body: bytes) -> bool:
        """Count the PDU's data-set fragments; say whether to abort before it."""
        if self.abort_after is None or self.aborted.is_set():
            return False
        offset = 0
        with self._lock:
            while offset < len(body):
                length = struct.unpack(">I", body[offset : offset + 4])[0]
                control = body[offset + 5]  # PS3.8 E.2: bit 0 command, bit 1 last
                offset += 4 + length
                if control & 1:
                    continue
                if self._fragments >= self.abort_after and not control & 2:
                    return True
                self._fragments += 1
        return False


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        data = sock.recv(size - len(chunks))
        if not data:
            raise EOFError
        chunks += data
    return bytes(chunks)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


# -- the figures ---------------------------------------------------------------

SECTIONS = {
    "test_faults": "Faults survived",
    "test_load": "Load",
    "test_bad_inputs": "Bad inputs",
}


def run_suite(xml_path: Path, basetemp: Path) -> tuple[int, float]:
    """Run the reliability tests with a JUnit XML report; return code and time."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--basetemp={basetemp}", f"--junitxml={xml_path}",
               "-o", "junit_family=xunit1",
               *(str(HERE / name) for name in TEST_FILES)]  # fmt: skip
    started = time.monotonic()
    code = subprocess.call(command, cwd=HERE.parent, timeout=900)
    return code, time.monotonic() - started


def read_cases(xml_path: Path) -> list[dict[str, str]]:
    """Return each test case of a JUnit XML report with its outcome."""
    cases = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is None:
                continue
            message = element.get("message") or ""
            outcome = kind
            if kind == "skipped" and element.get("type") == "pytest.xfail":
                outcome = "xfail (known bug)"
            elif kind == "skipped":
                outcome = f"skipped: {message}"
            break
        cases.append({
            "module": case.get("classname", "").rsplit(".", 1)[-1],
            "name": case.get("name", ""),
            "seconds": case.get("time", "0"),
            "outcome": outcome,
            "observed": props.get("observed") or "",
        })  # fmt: skip
    return cases


def render(cases: list[dict[str, str]], code: int, seconds: float) -> str:
    """Return the Markdown of the figures."""
    lines = [
        "# Reliability figures",
        "",
        "Regenerate with `python tests/reliability.py` (from the repository "
        "root; it runs `tests/test_faults.py`, `tests/test_load.py` and "
        "`tests/test_bad_inputs.py` under pytest with `--junitxml` and rewrites "
        "this file). Every peer is a real process on 127.0.0.1: Debian's "
        "Orthanc, DCMTK's storescu, pynetdicom senders, the project's own "
        "pacslistener and pacsretrieve.",
        "",
        f"Last run: pytest exit code {code}, {len(cases)} cases, "
        f"{seconds:.0f} s in all.",
    ]
    for module, title in SECTIONS.items():
        rows = [c for c in cases if c["module"] == module]
        lines += ["", f"## {title}", "", "| case | outcome | s | observed |",
                  "|---|---|---|---|"]  # fmt: skip
        for c in rows:
            observed = c["observed"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{c['name']}` | {c['outcome']} | "
                         f"{float(c['seconds']):.1f} | {observed} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the tests and rewrite RELIABILITY.md; return pytest's exit code."""
    work = Path(os.environ.get("RELIABILITY_TMP", "/tmp/reliability-run"))
    work.mkdir(parents=True, exist_ok=True)
    xml_path = work / "junit.xml"
    code, seconds = run_suite(xml_path, work / "bt")
    FIGURES.write_text(render(read_cases(xml_path), code, seconds))
    sys.stderr.write(f"wrote {FIGURES} ({seconds:.0f} s, pytest exit {code})\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
