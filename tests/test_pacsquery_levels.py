"""pacsquery --level: a row per series (the default) or a row per study.

Against the session's Orthanc, whose REST API says how many series and
instances each study holds.
"""

from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from test_pacsquery import Run, make_query, saved_logging

from orthanc import LOOPBACK, OrthancServer, SeriesTruth
from pacscommon.errors import ResultsFileError
from pacscommon.peers import Peer, Timeouts
from pacscommon.results import SUCCESS_FILE
from pacsquery.identifiers import SERIES_COLUMNS, STUDY_COLUMNS, build_query
from pacsquery.levels import STUDY, STUDY_ROOT
from pacsquery.query import run_queries
from pacsquery.table import RESULTS_TABLE
from pacsretrieve.selection import load_requests

COUNTS = ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the logging set-up that each run of ``main`` does."""
    with saved_logging():
        yield


@pytest.fixture
def query(tmp_path, capsys) -> Callable[..., Run]:  # type: ignore[no-untyped-def]
    """Return a function that runs pacsquery's ``main`` on a port with options."""
    return make_query(tmp_path, capsys)


@pytest.fixture(scope="module")
def studies(orthanc: OrthancServer) -> dict[str, list[SeriesTruth]]:
    """Return the series Orthanc holds, per StudyInstanceUID."""
    grouped: dict[str, list[SeriesTruth]] = {}
    for series in orthanc.series_truth().values():
        grouped.setdefault(series["StudyInstanceUID"], []).append(series)
    return grouped


def test_a_row_per_study_with_its_series_and_instance_counts(
    orthanc: OrthancServer,
    studies: dict[str, list[SeriesTruth]],
    query: Callable[..., Run],
) -> None:
    run = query(orthanc.dicom_port, "--level", "study")

    assert run.code == 0, run.stderr
    rows = {row["StudyInstanceUID"]: row for row in run.rows}
    assert len(rows) == len(run.rows) == len(studies)
    assert set(rows) == set(studies)
    for uid, series in studies.items():
        row = rows[uid]
        instances = sum(s["NumberOfSeriesRelatedInstances"] for s in series)
        assert row["NumberOfStudyRelatedSeries"] == str(len(series)), uid
        assert row["NumberOfStudyRelatedInstances"] == str(instances), uid
        assert row["PatientID"] == series[0]["PatientID"]
        assert row["StudyDate"] == series[0]["StudyDate"]
        assert all(row[kw] == "" for kw in SERIES_COLUMNS), row
    assert list(run.document["data"][0]) == [
        *STUDY_COLUMNS, *SERIES_COLUMNS, *COUNTS, "uid"
    ]  # fmt: skip


def test_the_study_level_totals_and_table(
    orthanc: OrthancServer,
    studies: dict[str, list[SeriesTruth]],
    query: Callable[..., Run],
) -> None:
    run = query(orthanc.dicom_port, "--level", "study")

    document = run.document
    assert document["level"] == "study"
    assert document["study_count"] == len(studies)
    assert document["series_count"] == sum(len(s) for s in studies.values())
    assert document["instance_count"] == orthanc.instance_count()
    table = (run.outputdir / RESULTS_TABLE).read_text("utf-8").splitlines()
    assert table[0] == (
        f"{len(studies)} studies, {document['series_count']} series, "
        f"{orthanc.instance_count()} instances (complete)"
    )
    assert table[2].split() == [
        "row", "date", "modalities", "series", "instances", "description"
    ]  # fmt: skip
    first = run.rows[0]
    assert table[3].split()[:1] == ["0"]
    assert first["NumberOfStudyRelatedInstances"] in table[3].split()


def test_study_level_asks_one_c_find(
    orthanc: OrthancServer, studies: dict[str, list[SeriesTruth]]
) -> None:
    peer = Peer(LOOPBACK, orthanc.dicom_port, orthanc.aet, "CHRISLOCAL")
    keys = build_query([], model=STUDY_ROOT, depth=STUDY)
    outcome = run_queries(peer, Timeouts(), [keys])

    assert outcome.requests == 1
    assert len(outcome.rows) == len(studies)


def test_study_level_in_patient_root_finds_the_same_studies(
    orthanc: OrthancServer, query: Callable[..., Run]
) -> None:
    study_root = query(orthanc.dicom_port, "--level", "study")
    patient_root = query(
        orthanc.dicom_port, "--level", "study", "--query-model", "patient"
    )

    assert patient_root.code == 0, patient_root.stderr
    assert Counter(r["StudyInstanceUID"] for r in patient_root.rows) == Counter(
        r["StudyInstanceUID"] for r in study_root.rows
    )


def test_study_filters_apply_at_study_level(
    orthanc: OrthancServer,
    studies: dict[str, list[SeriesTruth]],
    query: Callable[..., Run],
) -> None:
    uid = sorted(studies)[0]
    run = query(orthanc.dicom_port, "--level", "study", "--study-uid", uid)

    assert run.code == 0, run.stderr
    assert [row["StudyInstanceUID"] for row in run.rows] == [uid]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--modality", "CT"),
        ("--series-description", "AX*"),
        ("--filter", "BodyPartExamined=HEAD"),
    ],
)
def test_a_series_filter_with_study_level_is_exit_2(
    option: str, value: str, query: Callable[..., Run]
) -> None:
    run = query(1, "--level", "study", option, value)

    assert run.code == 2
    assert len(run.error_lines) == 1
    assert "filters series" in run.error_lines[0]
    assert "--level series" in run.error_lines[0]
    assert not (run.outputdir / SUCCESS_FILE).exists()


def test_an_unknown_level_is_exit_2(query: Callable[..., Run]) -> None:
    run = query(1, "--level", "image")

    assert run.code == 2
    assert run.error_lines == [
        "error: --level 'image' is not a level: use series (a row per series) or "
        "study (a row per study)"
    ]


def test_pacsretrieve_given_study_rows_says_to_query_series(
    orthanc: OrthancServer, query: Callable[..., Run]
) -> None:
    run = query(orthanc.dicom_port, "--level", "study")
    assert run.code == 0, run.stderr

    with pytest.raises(ResultsFileError) as refused:
        load_requests(run.outputdir / SUCCESS_FILE)

    assert "row 0 is a study, not a series" in str(refused.value)
    assert "series level" in str(refused.value)
    assert refused.value.exit_code == 2
