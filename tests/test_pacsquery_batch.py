"""Batch queries: a file of query rows in INPUTDIR, run over one association."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_pacsquery import (
    FakePacs,
    Run,
    Truth,
    make_query,
    saved_logging,
    serve_fake_pacs,
)

from orthanc import OrthancServer, free_port


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the logging set-up that each run of ``main`` does."""
    with saved_logging():
        yield


@pytest.fixture
def query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Return a function that runs pacsquery's ``main`` on a port with options."""
    return make_query(tmp_path, capsys)


@pytest.fixture(scope="module")
def truth(orthanc: OrthancServer) -> Truth:
    """Return what the session's Orthanc holds, per SeriesInstanceUID."""
    return orthanc.series_truth()


def by(truth: Truth, keyword: str, value: str) -> set[str]:
    """Return the series whose ``keyword`` is ``value``."""
    return {uid for uid, s in truth.items() if str(dict(s)[keyword]) == value}


CSV = """\
AccessionNumber,--study-date,patient-id
{acc},,
,2004,4MR1
,,4MR1
"""


def test_a_csv_batch_merges_its_rows_without_duplicates(
    orthanc: OrthancServer, truth: Truth, query: Callable[..., Run]
) -> None:
    acc = truth[min(by(truth, "Modality", "CT"))]["AccessionNumber"]
    run = query(orthanc.dicom_port, files={"queries.csv": CSV.format(acc=acc)})

    assert run.code == 0, run.stderr
    expected = by(truth, "AccessionNumber", acc) | by(truth, "PatientID", "4MR1")
    uids = [row["SeriesInstanceUID"] for row in run.rows]
    assert sorted(uids) == sorted(expected)
    tags = {
        row["SeriesInstanceUID"]["value"]: row["query"]["value"]
        for row in run.document["data"]
    }
    for uid in by(truth, "PatientID", "4MR1"):
        assert "queries.csv line 4: PatientID=4MR1" in tags[uid]
        if truth[uid]["StudyDate"].startswith("2004"):
            assert tags[uid].startswith("queries.csv line 3: StudyDate=2004")
    assert all(tags[uid] == f"queries.csv line 2: AccessionNumber={acc}"
               for uid in by(truth, "AccessionNumber", acc))  # fmt: skip


def test_a_json_batch_named_by_option_combines_with_the_options(
    orthanc: OrthancServer, truth: Truth, query: Callable[..., Run]
) -> None:
    rows = [{"PatientID": "4MR1"}, {"0010,0020": "1CT1", "Modality": None}]
    run = query(
        orthanc.dicom_port,
        "--batch-file",
        "mine.json",
        "--modality",
        "MR",
        "--patient-id",
        "ignored-by-every-row",
        files={"mine.json": json.dumps(rows, indent=2)},
    )

    assert run.code == 0, run.stderr
    expected = by(truth, "PatientID", "4MR1") & by(truth, "Modality", "MR")
    assert run.series_uids == expected


def test_a_batch_runs_over_one_association(
    fake_pacs: FakePacs, query: Callable[..., Run]
) -> None:
    fake_pacs.study_statuses = [0xFF00, 0xFF00, 0x0000]
    batch = "PatientID\nA\nB\nC\n"
    run = query(
        fake_pacs.port, "--called-aet", "FAKEPACS", files={"queries.csv": batch}
    )

    assert run.code == 0, run.stderr
    assert fake_pacs.associations == 1
    levels = [str(ds.QueryRetrieveLevel) for ds in fake_pacs.identifiers]
    # Each row asks for studies; each study's series are asked once for all rows.
    assert levels.count("STUDY") == 3 and levels.count("SERIES") == 2
    assert len(run.rows) == 2
    assert [row["query"]["value"] for row in run.document["data"]] == [
        "queries.csv line 2: PatientID=A; queries.csv line 3: PatientID=B; "
        "queries.csv line 4: PatientID=C"
    ] * 2


def test_json_rows_on_one_line_are_named_by_their_place(
    fake_pacs: FakePacs, query: Callable[..., Run]
) -> None:
    fake_pacs.study_statuses = [0xFF00, 0xFF00, 0x0000]
    batch = '[{"PatientID": "A"}, {"PatientID": "B"}, {"PatientID": "A"}]'
    run = query(
        fake_pacs.port, "--called-aet", "FAKEPACS", files={"queries.json": batch}
    )

    assert run.code == 0, run.stderr
    assert [row["query"]["value"] for row in run.document["data"]] == [
        "queries.json item 1: PatientID=A; queries.json item 2: PatientID=B; "
        "queries.json item 3: PatientID=A"
    ] * 2


@pytest.fixture
def fake_pacs() -> Iterator[FakePacs]:
    """Run the FakePacs of test_pacsquery on a free loopback port."""
    with serve_fake_pacs() as pacs:
        yield pacs


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("queries.csv", "PatientID,StudyDate\nP1,2020\nP2\n", "line 3"),
        ("queries.csv", "PatientID,NoSuchColumn\nP1,x\n", "line 1"),
        ("queries.csv", "PatientID,StudyDate\nP1,20201301\n", "line 2"),
        ("queries.csv", "PatientID,StudyDate\n,\nP2,2021-2020\n", "line 3"),
        ("queries.csv", "PatientID\n", "holds no query"),
        (
            "queries.json",
            '[\n  {"PatientID": "P1"},\n  {"PatientID": ["P2"]}\n]',
            "item 2",
        ),
        (
            "queries.json",
            '[\n  {"PatientID": "P1"},\n  {"PatientID": "P2"\n]',
            "line 4",
        ),
        ("queries.json", '{"PatientID": "P1"}', "line 1"),
        ("queries.json", '[{"PatientID": "P1"}, 7]', "item 2"),
        ("queries.csv", 'AccessionNumber\nACC0001\n"ACC0003\n', "line 3"),
        ("queries.csv", 'AccessionNumber\n"ACC0002\nACC0003\n', "line 2"),
        ("queries.csv", 'PatientID,StudyDate\n"P1"x,2020\n', "line 2"),
    ],
)
def test_a_malformed_batch_is_exit_2_naming_the_line(
    query: Callable[..., Run], name: str, text: str, line: str
) -> None:
    run = query(free_port(), files={name: text})

    assert run.code == 2, run.stderr
    assert len(run.error_lines) == 1
    assert line in run.error_lines[0]
    assert "cannot connect" not in run.stderr


def test_two_batch_files_or_a_missing_one_is_exit_2(query: Callable[..., Run]) -> None:
    both = query(
        free_port(), files={"queries.csv": "PatientID\nA\n", "queries.json": "[]"}
    )
    missing = query(free_port(), "--batch-file", "nowhere.csv")

    assert both.code == missing.code == 2
    assert "--batch-file" in both.error_lines[0]
    assert "nowhere.csv" in missing.error_lines[0]
