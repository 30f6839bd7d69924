"""pacsretrieve's C-GET and C-MOVE-to-itself modes, the dry run and the cap."""

from __future__ import annotations

import hashlib
import json
import socket
import tempfile
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from test_pacsretrieve import (
    check_series_arrived,
    error_lines,
    received_files,
    truth_rows,
    write_results,
)

from corpus import Corpus
from listener import Listener
from orthanc import LISTENER_AET, SELF_AET, OrthancServer, free_port
from pacscommon.arrivals import HEAD_BYTES
from pacscommon.headscan import (
    SOP_INSTANCE_UID,
    DataSetHead,
    part10_head,
    scan_layout,
)
from pacsretrieve import instances
from pacsretrieve.main import main, parser
from tmpfs import mounted_tmpfs


def run_mode(
    orthanc: OrthancServer, tmp: Path, *args: str, rows: list[dict[str, str]]
) -> tuple[int, Path]:
    """Run pacsretrieve's main without a listener; return (code, outputdir)."""
    inputdir, outputdir = tmp / "in", tmp / "out"
    inputdir.mkdir(parents=True, exist_ok=True)
    write_results(inputdir, rows)
    options = parser.parse_args(
        [
            "--pacs-port",
            str(orthanc.dicom_port),
            "--data-location",
            str(tmp / "no-listener"),
            "--wait-timeout",
            "10",
            "--retry-delay",
            "0.05",
            *args,
        ]  # fmt: skip
    )
    return main(options, inputdir, outputdir), outputdir


def only_tree_and_report(outputdir: Path) -> None:
    """Assert the output holds the series tree and report.json, nothing else."""
    hidden = [p for p in outputdir.rglob(".*")]
    assert hidden == []
    assert all(p.suffix == ".dcm" or p.is_dir() or p.name == "report.json"
               for p in outputdir.rglob("*"))  # fmt: skip


@pytest.mark.parametrize("mode", ["get", "self"])
def test_every_row_in_mode(
    orthanc: OrthancServer,
    corpus: Corpus,
    self_port: int,
    tmp_path: Path,
    mode: str,
) -> None:
    truth = orthanc.series_truth()
    code, out = run_mode(orthanc, tmp_path, "--mode", mode, "--move-destination",
                         SELF_AET, "--listen-port", str(self_port),
                         rows=truth_rows(truth))  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "success" and report["mode"] == mode
    assert sum(s["arrived"] for s in report["series"]) == len(corpus)
    for t in truth.values():
        check_series_arrived(t, out, corpus)
    syntaxes = {c.SOPInstanceUID: c.TransferSyntaxUID for c in corpus}
    for sop, path in received_files(out).items():
        # Sent as stored: a context for each transfer syntax, no transcoding.
        assert (
            dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
            == (syntaxes[sop])
        )
    only_tree_and_report(out)


def test_modes_give_the_same_layout(
    orthanc: OrthancServer, self_port: int, tmp_path: Path
) -> None:
    rows = truth_rows(orthanc.series_truth())[:4]
    trees = []
    for mode in ("get", "self"):
        code, out = run_mode(orthanc, tmp_path / mode, "--mode", mode,
                             "--move-destination", SELF_AET, "--listen-port",
                             str(self_port), rows=rows)  # fmt: skip
        assert code == 0
        trees.append(sorted(p.relative_to(out) for p in out.rglob("*.dcm")))
    assert trees[0] == trees[1] and trees[0]


def test_report_lists_each_instance_with_its_sha256(
    orthanc: OrthancServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_again: list[Path] = []
    read_whole = instances._read_whole

    def counted(path: Path | str) -> tuple[str, bytes, bool]:
        read_again.append(Path(path))
        return read_whole(path)

    monkeypatch.setattr(instances, "_read_whole", counted)
    rows = truth_rows(orthanc.series_truth())
    code, out = run_mode(orthanc, tmp_path, "--mode", "get", rows=rows)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    files = [out / i["file"] for s in report["series"] for i in s["instances"]]
    assert len(files) == sum(s["arrived"] for s in report["series"]) > 0
    for item in (i for s in report["series"] for i in s["instances"]):
        data = (out / item["file"]).read_bytes()
        assert item["sha256"] == hashlib.sha256(data).hexdigest()
        assert item["SOPInstanceUID"] == dcmread(out / item["file"]).SOPInstanceUID
    # Hashed as received: a file is read again only where the head the
    # receiver kept did not say its SOPInstanceUID.
    unsaid = {f.name for f in files if _receivers_scan(f) is None}
    assert {p.name for p in read_again} == unsaid
    assert len(unsaid) < len(files)


def _receivers_scan(path: Path) -> dict[str, str | None] | None:
    """Scan a stored file's SOPInstanceUID as the receiver saw its first bytes."""
    head = part10_head(path.read_bytes(), whole=True)
    assert head is not None
    kept = head.data[:HEAD_BYTES]
    return scan_layout(
        DataSetHead(kept, head.transfer_syntax, whole=len(kept) == len(head.data)),
        SOP_INSTANCE_UID,
    )


def test_self_mode_port_taken(
    orthanc: OrthancServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        rows = truth_rows(orthanc.series_truth())
        code, out = run_mode(orthanc, tmp_path, "--mode", "self", "--listen-port",
                             str(port), rows=rows)  # fmt: skip
    assert code == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "cannot listen" in lines[0]
    # Nothing is left behind: no staging data directory, no report.
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("mode", ["get", "move"])
def test_dry_run_pulls_nothing(
    orthanc: OrthancServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    # run_mode's --data-location does not exist: a dry run reads nothing there.
    truth = orthanc.series_truth()
    code, out = run_mode(orthanc, tmp_path, "--mode", mode, "--dry-run",
                         rows=truth_rows(truth))  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert not list(out.rglob("*.dcm"))
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "dry-run" and report["complete"] is False
    assert {s["SeriesInstanceUID"] for s in report["series"]} == set(truth)
    assert all(s["pacs"] is None for s in report["series"])
    would = [ln for ln in capsys.readouterr().err.splitlines() if "would pull" in ln]
    assert len(would) == len(truth)


def test_whole_study_is_one_study_level_move(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    truth = orthanc.series_truth()
    rows = truth_rows(truth)
    studies: dict[str, list[int]] = {}
    for n, row in enumerate(rows):
        studies.setdefault(row["StudyInstanceUID"], []).append(n)
    study, numbers = next((s, n) for s, n in studies.items() if len(n) > 1)
    choice = ",".join(str(n) for n in numbers)
    code, out = run_mode(orthanc, tmp_path, "--mode", "get", "--series", choice,
                         rows=rows)  # fmt: skip
    assert code == 0
    series = json.loads((out / "report.json").read_text())["series"]
    assert {s["level"] for s in series} == {"STUDY"}
    # One of the study's series only: a series-level retrieve.
    code, out = run_mode(orthanc, tmp_path / "one", "--mode", "get", "--series",
                         str(numbers[0]), rows=rows)  # fmt: skip
    assert code == 0
    (one,) = json.loads((out / "report.json").read_text())["series"]
    assert one["level"] == "SERIES"


def test_cap_refuses_a_whole_archive_pull(
    orthanc: OrthancServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = truth_rows(orthanc.series_truth())
    code, out = run_mode(orthanc, tmp_path, "--mode", "get", "--max-series", "3",
                         rows=rows)  # fmt: skip
    assert code == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "--max-series" in lines[0] and "raise" in lines[0]
    assert not (out / "report.json").exists()
    # Rows chosen explicitly are not capped.
    code, out = run_mode(orthanc, tmp_path, "--mode", "get", "--max-series", "3",
                         "--series", "0-4", "--dry-run", rows=rows)  # fmt: skip
    assert code == 0


def test_pacs_not_answering_echo(
    orthanc: OrthancServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run_mode(orthanc, tmp_path, "--mode", "get", "--pacs-port",
                         str(free_port()), "--retries", "1",
                         rows=truth_rows(orthanc.series_truth()))  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "cannot connect" in lines[0]
    assert "retry 1 of 1" in err  # a refused connection is retried
    assert not (out / "report.json").exists()


def test_preview_thumbnails(
    orthanc: OrthancServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = truth_rows(orthanc.series_truth())
    with warnings.catch_warnings():
        # pydicom warns about some of the real sample files as it decodes them.
        warnings.simplefilter("ignore", UserWarning)
        code, out = run_mode(orthanc, tmp_path, "--mode", "get", "--preview",
                             rows=rows)  # fmt: skip
    assert code == 0  # a preview that cannot be made is only a warning
    series = json.loads((out / "report.json").read_text())["series"]
    made = [s for s in series if s["preview"] is not None]
    assert len(made) >= len(series) - 1
    for item in made:
        png = out / item["preview"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png == (out / item["path"]).with_name(Path(item["path"]).name + ".png")
    assert all(not list((out / s["path"]).glob("*.png")) for s in series)
    # A preview that fails is one WARNING line, without pydicom's traceback.
    err = capsys.readouterr().err
    assert "Traceback" not in err
    missing = len(series) - len(made)
    assert err.count("WARNING pacsretrieve.preview") == missing


@pytest.mark.parametrize("mode", ["get", "self"])
def test_data_sets_stream_into_the_output_filesystem(
    orthanc: OrthancServer,
    corpus: Corpus,
    self_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """A system temp directory on another filesystem (as in a container) must
    not matter: the engine's data sets arrive in its own .incoming folder."""
    truth = orthanc.series_truth()
    with mounted_tmpfs(tmp_path / "other-fs", "20m") as other:
        monkeypatch.setattr(tempfile, "tempdir", str(other))
        code, out = run_mode(orthanc, tmp_path, "--mode", mode, "--move-destination",
                             SELF_AET, "--listen-port", str(self_port),
                             rows=truth_rows(truth))  # fmt: skip
        assert not list(other.iterdir())
    assert code == 0
    for t in truth.values():
        check_series_arrived(t, out, corpus)


def test_self_mode_to_another_listeners_title_says_where_they_went(
    orthanc: OrthancServer, tmp_path: Path, listener_port: int, self_port: int
) -> None:
    # The PACS knows LISTENER_AET as the listener's port: it sends there, and
    # nothing reaches this program's own SCP.
    rows = truth_rows(orthanc.series_truth())[:1]
    with Listener(tmp_path / "listener", listener_port):
        code, out = run_mode(orthanc, tmp_path / "run", "--mode", "self",
                             "--move-destination", LISTENER_AET, "--listen-port",
                             str(self_port), "--wait-timeout", "1",
                             rows=rows)  # fmt: skip
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    (series,) = report["series"]
    assert series["arrived"] == 0 and series["pacs"]["completed"] > 0
    assert f"entry for {LISTENER_AET}" in series["error"]
    assert f"--listen-port {self_port}" in series["error"]
    assert "--data-location" not in series["error"]
