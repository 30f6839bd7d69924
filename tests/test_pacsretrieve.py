"""pacsretrieve against a real Orthanc and the project's own listener."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from corpus import Corpus, pixel_data_bytes
from listener import Listener, program
from orthanc import OrthancServer, SeriesTruth, free_port
from pacscommon.results import SUCCESS_FILE, encode_rows
from pacsretrieve.main import main, parser


@pytest.fixture(scope="module")
def listener(
    tmp_path_factory: pytest.TempPathFactory, listener_port: int
) -> Iterator[Listener]:
    """The listener Orthanc knows as CHRISLOCAL, serving a data directory."""
    data = tmp_path_factory.mktemp("listener") / "data"
    with Listener(data, listener_port) as running:
        yield running


def truth_rows(truth: dict[str, SeriesTruth]) -> list[dict[str, str]]:
    """Return results rows for every series Orthanc holds, in a stable order."""
    rows = []
    for uid in sorted(truth):
        t = truth[uid]
        rows.append(
            {
                "PatientID": t["PatientID"],
                "StudyInstanceUID": t["StudyInstanceUID"],
                "SeriesInstanceUID": uid,
                "NumberOfSeriesRelatedInstances": str(
                    t["NumberOfSeriesRelatedInstances"]
                ),
            }
        )
    return rows


def write_results(inputdir: Path, rows: list[dict[str, str]]) -> None:
    """Write a success.txt as pacsquery would."""
    document = {"status": "success", "complete": True, "data": encode_rows(rows)}
    (inputdir / SUCCESS_FILE).write_text(json.dumps(document))


def run(
    orthanc: OrthancServer, listener: Listener, tmp: Path, *args: str
) -> tuple[int, Path]:
    """Run pacsretrieve's main against ``orthanc``; return (code, outputdir)."""
    inputdir, outputdir = tmp / "in", tmp / "out"
    inputdir.mkdir(exist_ok=True)
    options = parser.parse_args(
        [
            "--pacs-port",
            str(orthanc.dicom_port),
            "--data-location",
            str(listener.data_dir),
            "--wait-timeout",
            "10",
            "--retry-delay",
            "0.05",
            *args,
        ]  # fmt: skip
    )
    return main(options, inputdir, outputdir), outputdir


def received_files(outputdir: Path) -> dict[str, Path]:
    """Return the .dcm files under ``outputdir`` by SOPInstanceUID."""
    files = {}
    for path in outputdir.rglob("*.dcm"):
        files[str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    return files


def check_series_arrived(truth: SeriesTruth, outputdir: Path, corpus: Corpus) -> None:
    """Assert every instance of a series is in the output, pixels unchanged."""
    files = received_files(outputdir)
    originals = {c.SOPInstanceUID: c for c in corpus}
    for sop in truth["SOPInstanceUIDs"]:
        assert sop in files, f"instance {sop} missing"
        received = pixel_data_bytes(files[sop])
        assert received == pixel_data_bytes(originals[sop].path)


def test_retrieve_every_row(
    orthanc: OrthancServer, listener: Listener, corpus: Corpus, tmp_path: Path
) -> None:
    truth = orthanc.series_truth()
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", truth_rows(truth))
    code, out = run(orthanc, listener, tmp_path)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "success" and report["complete"] is True
    assert len(report["series"]) == len(truth)
    for item in report["series"]:
        expected = truth[item["SeriesInstanceUID"]]["NumberOfSeriesRelatedInstances"]
        assert item["arrived"] == expected and item["matches_query"] is True
        study = item["StudyInstanceUID"]
        if item["level"] == "STUDY":
            # Every series of the study chosen: one study-level C-MOVE.
            expected = sum(t["NumberOfSeriesRelatedInstances"]
                           for t in truth.values()
                           if t["StudyInstanceUID"] == study)  # fmt: skip
        assert item["pacs"]["completed"] == expected
        assert len(item["instances"]) == item["arrived"]
        for instance in item["instances"]:
            # Noted while arriving (the listener's file), reported for the copy.
            raw = (out / instance["file"]).read_bytes()
            assert instance["sha256"] == hashlib.sha256(raw).hexdigest()
            ds = dcmread(out / instance["file"], stop_before_pixels=True)
            assert instance["SOPInstanceUID"] == ds.SOPInstanceUID
        assert item["pacs"]["status"] == "0x0000"
        assert (out / item["path"]).is_dir()
    assert len(received_files(out)) == sum(
        t["NumberOfSeriesRelatedInstances"] for t in truth.values()
    )
    for t in truth.values():
        check_series_arrived(t, out, corpus)


def test_retrieve_chosen_rows_only(
    orthanc: OrthancServer, listener: Listener, corpus: Corpus, tmp_path: Path
) -> None:
    truth = orthanc.series_truth()
    rows = truth_rows(truth)
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", rows)
    chosen = [rows[0]["SeriesInstanceUID"], rows[2]["SeriesInstanceUID"]]
    code, out = run(orthanc, listener, tmp_path, "--series", f"0,{chosen[1]}")
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert [s["SeriesInstanceUID"] for s in report["series"]] == chosen
    expected = sum(truth[u]["NumberOfSeriesRelatedInstances"] for u in chosen)
    assert len(received_files(out)) == expected
    for uid in chosen:
        check_series_arrived(truth[uid], out, corpus)


def test_files_are_part10_with_the_sent_transfer_syntax(
    orthanc: OrthancServer, listener: Listener, corpus: Corpus, tmp_path: Path
) -> None:
    truth = orthanc.series_truth()
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", truth_rows(truth))
    code, out = run(orthanc, listener, tmp_path)
    assert code == 0
    syntaxes = {c.SOPInstanceUID: c.TransferSyntaxUID for c in corpus}
    for sop, path in received_files(out).items():
        assert path.read_bytes()[128:132] == b"DICM"
        meta = dcmread(path, stop_before_pixels=True).file_meta
        assert meta.MediaStorageSOPInstanceUID == sop
        # Orthanc sends what it stored, in the transfer syntax it was given.
        assert meta.TransferSyntaxUID == syntaxes[sop]


def test_range_selection(
    orthanc: OrthancServer, listener: Listener, tmp_path: Path
) -> None:
    rows = truth_rows(orthanc.series_truth())
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", rows)
    code, out = run(orthanc, listener, tmp_path, "--series", "1-3")
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert [s["row"] for s in report["series"]] == [1, 2, 3]


def test_second_run_replaces_not_duplicates(
    orthanc: OrthancServer, listener: Listener, tmp_path: Path
) -> None:
    rows = truth_rows(orthanc.series_truth())
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", rows)
    first, out = run(orthanc, listener, tmp_path, "--series", "0")
    before = sorted(p.relative_to(out) for p in out.rglob("*.dcm"))
    second, out = run(orthanc, listener, tmp_path, "--series", "0")
    after = sorted(p.relative_to(out) for p in out.rglob("*.dcm"))
    assert (first, second) == (0, 0)
    assert before == after and before


# Common failures: each gives one error line, a non-zero code, no report.


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Return the ``error:`` lines written on stderr."""
    return [
        ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")
    ]


def test_missing_results_file(
    orthanc: OrthancServer,
    listener: Listener,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run(orthanc, listener, tmp_path)
    assert code == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "success.txt" in lines[0] and "pacsquery" in lines[0]
    assert not (out / "report.json").exists()


@pytest.mark.parametrize(
    "text",
    ['{"status": "success", "data": [', '{"rows": []}', "[1, 2]",
     '{"data": []}', '{"data": [{"SeriesInstanceUID": {"value": "1.2"}}]}'],
)  # fmt: skip
def test_malformed_results_file(
    orthanc: OrthancServer,
    listener: Listener,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / SUCCESS_FILE).write_text(text)
    code, out = run(orthanc, listener, tmp_path)
    assert code == 2
    assert len(error_lines(capsys)) == 1
    assert not (out / "report.json").exists()


def test_row_that_does_not_exist(
    orthanc: OrthancServer,
    listener: Listener,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", truth_rows(orthanc.series_truth()))
    code, out = run(orthanc, listener, tmp_path, "--series", "99")
    assert code == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "'99'" in lines[0] and "matches no row" in lines[0]
    assert not list(out.rglob("*.dcm"))


def test_pacs_not_reachable(
    orthanc: OrthancServer,
    listener: Listener,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", truth_rows(orthanc.series_truth()))
    code, out = run(orthanc, listener, tmp_path, "--pacs-port", str(free_port()),
                    "--connect-timeout", "3")  # fmt: skip
    assert code == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "cannot connect" in lines[0]
    assert not (out / "report.json").exists()


def test_association_rejected(
    orthanc: OrthancServer,
    listener: Listener,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pacslistener itself rejects an unknown called AE when told to."""
    data = tmp_path / "strict"
    port = free_port()
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", truth_rows(orthanc.series_truth()))
    with Listener(data, port, "STRICT", "--require-called-aet"):
        code, out = run(orthanc, listener, tmp_path, "--pacs-port", str(port),
                        "--called-aet", "NOTSTRICT")  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "rejected" in lines[0]
    assert "retry" not in err  # a permanent rejection is not retried


def test_calling_ae_unknown_to_the_pacs(
    orthanc: OrthancServer,
    listener: Listener,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", truth_rows(orthanc.series_truth()))
    code, out = run(orthanc, listener, tmp_path, "--calling-aet", "STRANGER")
    assert code == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "STRANGER" in lines[0]
    assert not list(out.rglob("*.dcm"))


def test_move_destination_unknown(
    orthanc: OrthancServer,
    listener: Listener,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "in").mkdir()
    write_results(tmp_path / "in", truth_rows(orthanc.series_truth())[:1])
    code, out = run(orthanc, listener, tmp_path, "--move-destination", "NOWHERE")
    assert code == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "NOWHERE" in lines[0] and "DicomModalities" in lines[0]
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "partial" and report["complete"] is False
    assert report["series"][0]["complete"] is False
    assert not list(out.rglob("*.dcm"))


def test_console_script_and_environment(
    orthanc: OrthancServer, listener: Listener, tmp_path: Path
) -> None:
    """The installed script reads options from PACSRETRIEVE_* variables."""
    inputdir, outputdir = tmp_path / "in", tmp_path / "out"
    inputdir.mkdir()
    write_results(inputdir, truth_rows(orthanc.series_truth())[:1])
    env = {"PACSRETRIEVE_PACS_PORT": str(orthanc.dicom_port),
           "PACSRETRIEVE_DATA_LOCATION": str(listener.data_dir)}  # fmt: skip
    done = subprocess.run(
        [program("pacsretrieve"), str(inputdir), str(outputdir)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert list(outputdir.rglob("*.dcm"))


def test_a_series_no_longer_in_the_pacs_is_named_as_a_likely_cause(
    orthanc: OrthancServer,
    listener: Listener,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "in").mkdir()
    row = truth_rows(orthanc.series_truth())[0]
    row["SeriesInstanceUID"] = "1.2.3.999"
    write_results(tmp_path / "in", [row])
    code, out = run(orthanc, listener, tmp_path)
    assert code == 1
    lines = error_lines(capsys)
    # Orthanc answers 0xC000 with nothing sent, as for an unknown destination.
    assert len(lines) == 1 and "0xC000" in lines[0]
    assert "no longer in the PACS" in lines[0]
    assert not list(out.rglob("*.dcm"))
