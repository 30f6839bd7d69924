"""pacsretrieve's reading of C-MOVE statuses, timeouts, retries and parallel moves.

Orthanc never answers 0xB000, 0xA801 or 0xA7xx (a refused sub-operation ends its
move with 0xC000), so those come from a real pynetdicom Q/R SCP run here: a
small fake PACS whose C-MOVE handler plays one scenario, sending real corpus
instances to pacsretrieve's own storage SCP (``--mode self``).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from test_pacsretrieve import error_lines, write_results

from corpus import Corpus
from listener import Listener
from orthanc import LISTENER_AET, OrthancServer, free_port
from pacsretrieve.arrival import WaitBounds, wait_for
from pacsretrieve.main import main, parser

Scenario = Callable[[Dataset, list[Dataset]], Iterator[Any]]


class FakePacs:
    """A pynetdicom Q/R SCP that answers C-MOVE the way ``scenario`` says."""

    def __init__(self, series: dict[str, list[Dataset]], self_port: int) -> None:
        self.series = series
        self.self_port = self_port
        self.scenario: Scenario = self.send_all
        self.port = free_port()
        self.moves = 0
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()
        ae = AE("FAKEPACS")
        ae.add_supported_context(Verification)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        ae.add_requested_context(CTImageStorage)
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_MOVE, self.on_move)],
        )

    def on_move(self, event: evt.Event) -> Iterator[Any]:
        """Play the scenario for the series the identifier names."""
        with self._lock:
            self.moves += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            datasets = self.series[str(event.identifier.SeriesInstanceUID)]
            yield from self.scenario(event, datasets)
        finally:
            with self._lock:
                self.active -= 1

    def destination(self) -> tuple[str, int]:
        """Return where MOVESELF, pacsretrieve's own SCP, listens."""
        return ("127.0.0.1", self.self_port)

    def send_all(self, event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        """Send every instance: success."""
        yield self.destination()
        yield len(datasets)
        for ds in datasets:
            yield 0xFF00, ds


@pytest.fixture(scope="module")
def ct_series(corpus: Corpus) -> dict[str, list[Dataset]]:
    """The corpus's CT series of six slices, read as data sets."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        (files,) = [f for f in corpus.series().values() if len(f) == 6]
        return {files[0].SeriesInstanceUID: [dcmread(f.path) for f in files]}


@pytest.fixture(scope="module")
def three_series(ct_series: dict[str, list[Dataset]]) -> dict[str, list[Dataset]]:
    """Three series of two CT slices, each in a study of its own, fresh UIDs."""
    (slices,) = ct_series.values()
    series = {}
    for _ in range(3):
        study, uid = generate_uid(), generate_uid()
        copies = []
        for ds in slices[:2]:
            copy = deepcopy(ds)
            copy.StudyInstanceUID, copy.SeriesInstanceUID = study, uid
            copy.SOPInstanceUID = generate_uid()
            copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
            copies.append(copy)
        series[uid] = copies
    return series


@pytest.fixture()
def fake(ct_series: dict[str, list[Dataset]], self_port: int) -> Iterator[FakePacs]:
    """A fake PACS holding the CT series, on a free port, stopped after the test."""
    pacs = FakePacs(ct_series, self_port)
    yield pacs
    pacs.server.shutdown()


@pytest.fixture()
def fake3(three_series: dict[str, list[Dataset]], self_port: int) -> Iterator[FakePacs]:
    """A fake PACS holding three series of three studies."""
    pacs = FakePacs(three_series, self_port)
    yield pacs
    pacs.server.shutdown()


def rows_of(series: dict[str, list[Dataset]]) -> list[dict[str, str]]:
    """Return results rows for the series."""
    return [
        {"StudyInstanceUID": str(ds[0].StudyInstanceUID), "SeriesInstanceUID": uid,
         "NumberOfSeriesRelatedInstances": str(len(ds))}
        for uid, ds in series.items()
    ]  # fmt: skip


def pull(fake: FakePacs, tmp: Path, *args: str) -> tuple[int, dict[str, Any] | None]:
    """Pull from the fake PACS into our own SCP; return (code, report)."""
    inputdir, outputdir = tmp / "in", tmp / "out"
    inputdir.mkdir(exist_ok=True)
    write_results(inputdir, rows_of(fake.series))
    options = parser.parse_args(
        [
            "--pacs-port",
            str(fake.port),
            "--called-aet",
            "FAKEPACS",
            "--mode",
            "self",
            "--move-destination",
            "MOVESELF",
            "--listen-port",
            str(fake.self_port),
            "--wait-timeout",
            "5",
            "--retry-delay",
            "0.05",
            *args,
        ]  # fmt: skip
    )
    code = main(options, inputdir, outputdir)
    report = outputdir / "report.json"
    return code, json.loads(report.read_text()) if report.exists() else None


def test_success(fake: FakePacs, tmp_path: Path) -> None:
    code, report = pull(fake, tmp_path)
    assert code == 0 and report is not None
    (series,) = report["series"]
    assert series["complete"] is True and series["arrived"] == 6


def test_warning_with_failed_instances_is_partial(
    fake: FakePacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def one_refused(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        yield fake.destination()
        yield len(datasets)
        for ds in datasets[:-1]:
            yield 0xFF00, ds
        bad = Dataset()
        bad.update(datasets[-1])
        bad.file_meta = datasets[-1].file_meta
        del bad.SeriesInstanceUID  # our storage SCP refuses it (0xC000)
        yield 0xFF00, bad

    fake.scenario = one_refused
    code, report = pull(fake, tmp_path)
    assert code == 1 and report is not None
    assert report["status"] == "partial"
    (series,) = report["series"]
    pacs = series["pacs"]
    assert pacs["status"] == "0xB000"
    assert (pacs["completed"], pacs["failed"]) == (5, 1)
    last = str(fake.series[series["SeriesInstanceUID"]][-1].SOPInstanceUID)
    assert pacs["FailedSOPInstanceUIDList"] == [last]
    assert series["arrived"] == 5 and series["complete"] is False
    assert len(series["instances"]) == 5  # what did arrive is there
    assert len(error_lines(capsys)) == 1


@pytest.mark.parametrize(
    ("status", "words"),
    [(0xA701, "out of resources"), (0xA702, "out of resources"),
     (0xA900, "does not match"), (0xC001, "unknown or unreachable")],
)  # fmt: skip
def test_failure_statuses(
    fake: FakePacs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    status: int,
    words: str,
) -> None:
    def scenario(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        yield fake.destination()
        yield len(datasets)
        yield status, None

    fake.scenario = scenario
    code, report = pull(fake, tmp_path)
    assert code == 1 and report is not None
    (series,) = report["series"]
    assert series["pacs"]["status"] == f"0x{status:04X}"
    assert series["attempts"] == 1  # a failure status is not retried
    lines = error_lines(capsys)
    assert len(lines) == 1 and words in lines[0]


def test_destination_unknown_a801(
    fake: FakePacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def unknown(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        yield None, None

    fake.scenario = unknown
    code, report = pull(fake, tmp_path)
    assert code == 1 and report is not None
    assert report["series"][0]["pacs"]["status"] == "0xA801"
    lines = error_lines(capsys)
    assert len(lines) == 1 and "MOVESELF unknown" in lines[0]


def test_abort_is_retried_then_reported(
    fake: FakePacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def abort(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        event.assoc.abort()
        yield None, None

    fake.scenario = abort
    code, report = pull(fake, tmp_path, "--retries", "2")
    assert code == 1 and report is not None
    assert fake.moves == 3 and report["series"][0]["attempts"] == 3
    lines = error_lines(capsys)
    assert len(lines) == 1 and "sent no status" in lines[0]


def test_abort_once_then_success(fake: FakePacs, tmp_path: Path) -> None:
    def abort_first(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        if fake.moves == 1:
            event.assoc.abort()
            yield None, None
            return
        yield from fake.send_all(event, datasets)

    fake.scenario = abort_first
    code, report = pull(fake, tmp_path)
    assert code == 0 and report is not None
    assert report["series"][0]["attempts"] == 2


def test_transient_rejection_is_retried(
    fake: FakePacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PACS at its association limit rejects transiently (PS3.8 9.3.4)."""
    fake.server.ae.maximum_associations = 1
    ae = AE("HOLDER")
    ae.add_requested_context(Verification)
    held = ae.associate("127.0.0.1", fake.port, ae_title="FAKEPACS")
    assert held.is_established
    timer = threading.Timer(0.3, held.release)
    timer.start()
    try:
        code, report = pull(fake, tmp_path, "--retries", "4", "--retry-delay", "0.1")
    finally:
        timer.join()
    assert code == 0 and report is not None
    err = capsys.readouterr().err
    assert "rejected" in err and "retry 1 of 4" in err


def slow(fake: FakePacs, gap: float) -> Scenario:
    """Return a scenario that sends each instance ``gap`` seconds after the last."""

    def scenario(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        yield fake.destination()
        yield len(datasets)
        for ds in datasets:
            time.sleep(gap)  # the slow PACS under test
            yield 0xFF00, ds

    return scenario


def test_dimse_timeout_bounds_each_gap_not_the_move(
    fake: FakePacs, tmp_path: Path
) -> None:
    fake.scenario = slow(fake, 0.25)  # 1.5 s in all, 0.25 s between answers
    code, report = pull(fake, tmp_path, "--dimse-timeout", "1")
    assert code == 0 and report is not None


def test_dimse_timeout_on_a_long_gap(
    fake: FakePacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.scenario = slow(fake, 1.5)
    code, report = pull(fake, tmp_path, "--dimse-timeout", "0.5", "--retries", "0")
    assert code == 1 and report is not None
    lines = error_lines(capsys)
    assert len(lines) == 1 and "--dimse-timeout" in lines[0]


def test_deadline_stops_what_has_not_started(fake3: FakePacs, tmp_path: Path) -> None:
    fake = fake3
    fake.scenario = slow(fake, 0.3)
    code, report = pull(fake, tmp_path, "--deadline", "0.5")
    assert code == 1 and report is not None
    errors = [s["error"] or "" for s in report["series"]]
    assert "--deadline passed" in errors[-1]
    assert fake.moves < 3


def test_parallel_moves_use_several_associations(
    fake3: FakePacs, tmp_path: Path
) -> None:
    fake = fake3
    fake.scenario = slow(fake, 0.2)
    code, report = pull(fake, tmp_path, "--parallel", "3")
    assert code == 0 and report is not None
    assert fake.moves == 3 and fake.most_active >= 2


# Against the real Orthanc.


def test_orthanc_failure_after_some_sent(
    orthanc: OrthancServer,
    self_port: int,
    ct_series: dict[str, list[Dataset]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A destination that refuses the second instance: Orthanc answers 0xC000."""
    stored: list[str] = []

    def refuse_after_one(event: evt.Event) -> int:
        stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000 if len(stored) == 1 else 0xA700

    ae = AE("MOVESELF")
    ae.add_supported_context(CTImageStorage)
    handlers = [(evt.EVT_C_STORE, refuse_after_one)]
    server = ae.start_server(
        ("127.0.0.1", self_port), block=False, evt_handlers=handlers
    )
    inputdir, outputdir = tmp_path / "in", tmp_path / "out"
    (tmp_path / "data").mkdir()
    inputdir.mkdir()
    write_results(inputdir, rows_of(ct_series))
    try:
        options = parser.parse_args(
            [
                "--pacs-port",
                str(orthanc.dicom_port),
                "--move-destination",
                "MOVESELF",
                "--data-location",
                str(tmp_path / "data"),
            ]  # fmt: skip
        )
        code = main(options, inputdir, outputdir)
    finally:
        server.shutdown()
    assert code == 1
    (series,) = json.loads((outputdir / "report.json").read_text())["series"]
    assert series["pacs"]["status"] == "0xC000"
    assert series["pacs"]["completed"] == 1  # from the pending response
    lines = error_lines(capsys)
    assert len(lines) == 1 and "0xC000" in lines[0] and "unknown" not in lines[0]


def test_a_series_over_two_associations(
    corpus: Corpus, tmp_path: Path, orthanc: OrthancServer
) -> None:
    """Half a series from each of two senders; the wait counts them all."""
    (files,) = [f for f in corpus.series().values() if len(f) == 6]
    uid = files[0].SeriesInstanceUID
    port = free_port()
    found: list[int] = []
    with Listener(tmp_path / "data", port, LISTENER_AET):
        waiter = threading.Thread(
            target=lambda: found.append(
                wait_for(tmp_path / "data", {uid: 6}, 6, WaitBounds(10))[uid].count
            )
        )
        waiter.start()
        for half in (files[:3], files[3:]):
            subprocess.run(
                ["/usr/bin/storescu", "-aec", LISTENER_AET, "127.0.0.1", str(port),
                 *[str(f.path) for f in half]],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
        waiter.join(15)
    assert found == [6]


def test_progress_and_summary_lines(
    fake: FakePacs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pacsretrieve.move.PROGRESS_EVERY", 0.0)
    code, report = pull(fake, tmp_path)
    assert code == 0 and report is not None
    err = capsys.readouterr().err
    uid = report["series"][0]["SeriesInstanceUID"]
    assert f"series {uid}: 3 of 6 instances sent" in err
    assert f"series {uid}: 6 of 6 instances received" in err
    assert "1 of 1 series retrieved whole, 6 instances" in err
