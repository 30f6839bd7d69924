"""Query benchmark: pacsquery against DCMTK findscu on an Orthanc of 2000 studies.

An Orthanc (``TCP_NODELAY=1``, from tests/orthanc.py) holds 2000 studies of one
series of one small instance each, made with pydicom and uploaded over REST. Its
storage and index are cached in ``bench/work/orthanc-query-2000/``, so a rerun
uploads nothing. Each target is one command, run in turn (A, B, C, A, B, C, ...);
a figure is the median of the runs, a ratio the median of per-run ratios.

Two comparisons: ``pacsquery --level study`` against findscu's one STUDY-level
C-FIND for every study (the issue's target), and pacsquery's walk (STUDY, then
SERIES for each study) against findscu sending the same 2001 C-FINDs over one
association. pacsquery runs as the images install it (``programs.py``: without
the test environment's numpy and pylibjpeg, which pydicom imports at start-up
whenever they are there); ``--level study`` also from the test environment
(.venv), to show what those imports cost.

    python bench/query.py [--runs N]

The Markdown table is printed and written to bench/RESULTS.md ("Query").
"""

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import data
import programs
import receive
import scratch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from quiet import wait_until_quiet
from timing import timed_run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from orthanc import OrthancServer  # noqa: E402

STUDIES = 2000
FOLDER = data.WORK / f"orthanc-query-{STUDIES}"
LOADED = FOLDER / "loaded"  # written once Orthanc holds every study
AET = "CHRISLOCAL"
BIN = Path(sys.executable).parent
PACSQUERY = str(BIN / "pacsquery")
FINDSCU = "/usr/bin/findscu"
NODELAY = {"TCP_NODELAY": "1"}
TIMEOUT = 300.0
STUDY_KEYS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
              "StudyDate", "StudyDescription", "AccessionNumber",
              "StudyInstanceUID", "ModalitiesInStudy")  # fmt: skip
SERIES_KEYS = ("SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
               "Modality", "NumberOfSeriesRelatedInstances")  # fmt: skip
# What pacsquery --level study asks besides STUDY_KEYS.
COUNT_KEYS = ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")


def study_uid(number: int) -> str:
    """Return the StudyInstanceUID of study ``number``."""
    return data.uid("bench", "query", "study", number)


def instance(number: int) -> bytes:
    """Return the Part-10 bytes of the one instance of study ``number``."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = f"Bench^Query{number % 200:03d}"
    ds.PatientID = f"BQ{number % 200:04d}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid(number)
    ds.StudyDate = f"2024{1 + number % 12:02d}{1 + number % 28:02d}"
    ds.StudyTime = "101500"
    ds.StudyID = str(number)
    ds.AccessionNumber = f"ACCQ{number:05d}"
    ds.StudyDescription = f"BENCH QUERY {number}"
    ds.SeriesInstanceUID = data.uid("bench", "query", "series", number)
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Axial"
    ds.Modality = "CT"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = data.uid("bench", "query", "instance", number)
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(128)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def load(server: OrthancServer) -> None:
    """Upload the studies unless the cached Orthanc already holds them all."""
    if LOADED.exists() and server.instance_count() == STUDIES:
        return

    def upload(number: int) -> None:
        server.request("POST", "/instances", instance(number), "application/dicom")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, range(STUDIES)))
    count = server.instance_count()
    if count != STUDIES:
        raise RuntimeError(f"Orthanc holds {count} instances, not {STUDIES}")
    LOADED.write_text(f"{STUDIES}\n")


def query_file(path: Path, level: str, keys: tuple[str, ...], **values: str) -> None:
    """Write a findscu query file: ``keys`` empty, ``values`` set."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in keys:
        setattr(ds, keyword, values.get(keyword, ""))
    ds.save_as(path, implicit_vr=True, little_endian=True)


def findscu(port: int, *files: str) -> list[str]:
    """Return a findscu command: Study Root, one association for all files."""
    return [FINDSCU, "-S", "-aet", AET, "-aec", "ORTHANC", "127.0.0.1", str(port),
            *files]  # fmt: skip


@dataclass(frozen=True)
class Target:
    """One command to time, and what the ratio column compares it to."""

    name: str
    label: str
    command: list[str]
    env: dict[str, str]
    reference: str | None = None
    finds: int = 1  # C-FIND requests it sends


def targets(port: int, tmp: Path, image: str) -> list[Target]:
    """Return the commands to time against the Orthanc on ``port``."""
    study = tmp / "study.dcm"
    query_file(study, "STUDY", STUDY_KEYS)
    studies = tmp / "studies.dcm"
    query_file(studies, "STUDY", (*STUDY_KEYS, *COUNT_KEYS))
    every_series = tmp / "series-all.dcm"
    query_file(every_series, "SERIES", (*SERIES_KEYS, "StudyInstanceUID"))
    per_study = []
    for number in range(STUDIES):
        path = tmp / f"series-{number:05d}.dcm"
        keys = ("StudyInstanceUID", *SERIES_KEYS)
        query_file(path, "SERIES", keys, StudyInstanceUID=study_uid(number))
        per_study.append(str(path))
    pq = [PACSQUERY, "--pacs-port", str(port), "--log-level", "WARNING"]
    shipped = [image, *pq[1:]]
    inp, out = tmp / "in", tmp / "out"
    inp.mkdir()
    return [
        Target("findscu-study", "findscu, STUDY level, every study with its "
               "counts (1 C-FIND)", findscu(port, str(studies)), NODELAY),
        Target("pacsquery-image-study", "pacsquery --level study (every study; "
               "1 C-FIND), installed as its image installs it", [*shipped,
               "--level", "study", str(inp), str(out / "d")], {}, "findscu-study"),
        Target("pacsquery-level-study", "the same from the test environment "
               "(.venv: pydicom also imports numpy and pylibjpeg)", [*pq, "--level",
               "study", str(inp), str(out / "c")], {}, "findscu-study"),
        Target("findscu-walk", f"findscu, STUDY then SERIES per study "
               f"({STUDIES + 1} C-FINDs, one association)",
               findscu(port, str(study), *per_study), NODELAY, None, STUDIES + 1),
        Target("findscu-series", "findscu, SERIES level, empty StudyInstanceUID "
               "(1 C-FIND)", findscu(port, str(every_series)), NODELAY),
        Target("pacsquery-study", "pacsquery --study-date 1900-2100 (every study; "
               f"{STUDIES + 1} C-FINDs)", [*shipped, "--study-date", "1900-2100",
               str(inp), str(out / "a")], {}, "findscu-walk", STUDIES + 1),
        Target("pacsquery", f"pacsquery, no filter: every series ({STUDIES + 1} "
               "C-FINDs)", [*shipped, str(inp), str(out / "b")], {}, "findscu-walk",
               STUDIES + 1),
    ]  # fmt: skip


def run(target: Target, log: Path) -> float:
    """Run one target once; return its wall time in seconds."""
    env = dict(os.environ, **target.env)
    with log.open("wb") as sink:
        done = timed_run(target.command, env, TIMEOUT, stdout=sink)
    if done.returncode != 0:
        raise RuntimeError(f"{target.name} exited {done.returncode}; see {log}")
    return done.seconds


def check(tmp: Path, logs: Path) -> str:
    """Check that each command saw every study and series; say what it saw."""
    seen = []
    for name in ("findscu-study", "findscu-walk", "findscu-series"):
        text = (logs / f"{name}.log").read_text(errors="replace")
        seen.append(f"{name}: {text.count('Find Response:') - text.count('(Success)')}")
    for sub in ("a", "b", "c", "d"):
        document = json.loads((tmp / "out" / sub / "success.txt").read_text())
        seen.append(f"pacsquery {sub}: {len(document['data'])} rows")
    return "; ".join(seen)


def per_run_ratio(times: dict[str, list[float]], name: str, reference: str) -> float:
    """Return the median of the per-run ratios of ``name`` to ``reference``."""
    pairs = zip(times[name], times[reference], strict=True)
    return statistics.median(a / b for a, b in pairs)


def table(times: dict[str, list[float]], found: list[Target]) -> str:
    """Return the Markdown table of medians and ratios."""
    lines = ["| command | median s | ms per C-FIND | ratio | runs: s |",
             "|---|---:|---:|---:|---|"]  # fmt: skip
    for t in found:
        runs = times[t.name]
        ratio = "-"
        if t.reference:
            ratio = f"{per_run_ratio(times, t.name, t.reference):.2f} x {t.reference}"
        spread = ", ".join(f"{s:.2f}" for s in runs)
        median = statistics.median(runs)
        lines.append(f"| {t.label} | {median:.2f} | {1000 * median / t.finds:.1f} "
                     f"| {ratio} | {spread} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Load the Orthanc, time every target, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args(argv)
    image = programs.program("pacsquery")
    load_before = receive.load_average()
    port = receive.free_port()
    peers = {AET: (AET, "127.0.0.1", receive.free_port())}
    with OrthancServer(FOLDER, modalities=peers) as server, \
            tempfile.TemporaryDirectory(dir=scratch.root()) as folder:  # fmt: skip
        load(server)
        tmp = Path(folder)
        found = targets(server.dicom_port, tmp, image)
        logs = tmp / "logs"
        logs.mkdir()
        times: dict[str, list[float]] = {t.name: [] for t in found}
        quiet = []
        for _ in range(options.runs):
            for t in found:
                quiet.append(wait_until_quiet())
                times[t.name].append(run(t, logs / f"{t.name}.log"))
        seen = check(tmp, logs)
    del port
    text = "\n".join([
        receive.header(f"python bench/query.py --runs {options.runs}",
                       options.runs, load_before).split("\n- Method:")[0],
        f"- Orthanc: {server.aet}, Debian's 1.10.1, TCP_NODELAY=1, {STUDIES} "
        "studies of one series of one 8x8 instance each",
        "- Method: each command's wall time from start to exit, runs interleaved, "
        f"median of {options.runs}; ratio is the median of per-run ratios. "
        "findscu has TCP_NODELAY=1 and its default output (each answer logged), "
        "sent to a file; pacsquery (console script) writes success.txt and "
        "results.txt. Every command asks the same return keys (pacsquery's "
        "columns): `--level study` and findscu's STUDY-level C-FIND add "
        "NumberOfStudyRelatedSeries and NumberOfStudyRelatedInstances; a walk "
        "asks STUDY, then SERIES for each study, and its ratio is to findscu "
        f"doing the same {STUDIES + 1} C-FINDs over one association. Runs that "
        f"started on a busy machine: {quiet.count(False)} of {len(quiet)}.",
        f"- Answers seen: {seen}",
        "",
        table(times, found),
        "",
        "Study-level target (pacsquery <= 1.5x findscu): `pacsquery --level "
        "study` takes "
        f"{per_run_ratio(times, 'pacsquery-image-study', 'findscu-study'):.2f}x "
        "findscu's STUDY-level C-FIND as the image installs it ("
        f"{per_run_ratio(times, 'pacsquery-level-study', 'findscu-study'):.2f}x "
        "from the test environment); the walk over every study takes "
        f"{per_run_ratio(times, 'pacsquery-study', 'findscu-walk'):.2f}x findscu "
        "asking the same C-FINDs.",
    ])  # fmt: skip
    print(text)
    receive.write_results(text, "Query")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
