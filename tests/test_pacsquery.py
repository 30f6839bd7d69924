"""Tests of pacsquery against a real Orthanc, and against small SCPs of our own.

Orthanc's REST API (``series_truth()``) says what the PACS holds; pacsquery must
find exactly that over DICOM. The small pynetdicom SCPs answer what Orthanc
cannot be made to answer: a cancel, a failure status, silence.
"""

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import LISTENER_AET
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)
from pynetdicom.transport import ThreadedAssociationServer

from corpus import Corpus
from orthanc import LOOPBACK, OrthancServer, SeriesTruth, free_port
from pacscommon.dicomtext import element_text
from pacscommon.results import ERROR_FILE, SUCCESS_FILE, load_rows
from pacsquery.identifiers import SERIES_COLUMNS, STUDY_COLUMNS
from pacsquery.main import main, parser

Truth = dict[str, SeriesTruth]

COLUMNS = (*STUDY_COLUMNS, *SERIES_COLUMNS)
# The attributes Orthanc's REST API and the rows both hold.
COMPARED = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "StudyDate",
    "StudyDescription",
    "AccessionNumber",
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
)
# PS3.4 C.4.1.1.4
STATUS_PENDING = 0xFF00
STATUS_SUCCESS = 0x0000
STATUS_CANCEL = 0xFE00
STATUS_OUT_OF_RESOURCES = 0xA700


@dataclass
class Run:
    """What one run of pacsquery left behind."""

    code: int
    outputdir: Path
    stderr: str

    @property
    def document(self) -> dict[str, Any]:
        """Return ``success.txt``, parsed."""
        result: dict[str, Any] = json.loads(
            (self.outputdir / SUCCESS_FILE).read_text("utf-8")
        )
        return result

    @property
    def rows(self) -> list[dict[str, str]]:
        """Return the rows of ``success.txt``, keyword to text."""
        return load_rows(self.outputdir / SUCCESS_FILE)

    @property
    def series_uids(self) -> set[str]:
        """Return the SeriesInstanceUIDs of the rows."""
        return {row["SeriesInstanceUID"] for row in self.rows}

    @property
    def error_lines(self) -> list[str]:
        """Return the ``error:`` lines written on stderr."""
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    @property
    def error_document(self) -> dict[str, Any]:
        """Return ``error.txt``, parsed."""
        result: dict[str, Any] = json.loads(
            (self.outputdir / ERROR_FILE).read_text("utf-8")
        )
        return result


@contextmanager
def saved_logging() -> Iterator[None]:
    """Undo, on leaving, the logging set-up that each run of ``main`` does."""
    loggers = [logging.getLogger(), logging.getLogger("pynetdicom")]
    saved = [(lg, lg.handlers[:], lg.level) for lg in loggers]
    yield
    for lg, handlers, level in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the logging set-up that each run of ``main`` does."""
    with saved_logging():
        yield


def make_query(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Run]:
    """Return a function that runs pacsquery's ``main`` on a port with options.

    Keyword ``files`` ({name: text}) are written into the input directory first.
    """
    runs = iter(range(1000))

    def run(port: int, *args: str, files: dict[str, str] | None = None) -> Run:
        n = next(runs)
        inputdir = tmp_path / f"in{n}"
        outputdir = tmp_path / f"out{n}"
        inputdir.mkdir()
        outputdir.mkdir()
        for name, text in (files or {}).items():
            (inputdir / name).write_text(text, "utf-8")
        options = parser.parse_args(["--pacs-port", str(port), *args])
        capsys.readouterr()
        code = main(options, inputdir, outputdir)
        return Run(code, outputdir, capsys.readouterr().err)

    return run


@pytest.fixture
def query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Return a function that runs pacsquery's ``main`` on a port with options."""
    return make_query(tmp_path, capsys)


@pytest.fixture(scope="module")
def truth(orthanc: OrthancServer) -> Truth:
    """Return what the session's Orthanc holds, per SeriesInstanceUID."""
    return orthanc.series_truth()


def select(truth: Truth, keep: Callable[[SeriesTruth], bool]) -> set[str]:
    """Return the SeriesInstanceUIDs of the series that ``keep`` accepts."""
    return {uid for uid, series in truth.items() if keep(series)}


def field_of(series: SeriesTruth, keyword: str) -> str:
    """Return one attribute of a series as text, by a keyword known at run time."""
    return str(dict(series)[keyword])


def one_series(truth: Truth, Modality: str) -> SeriesTruth:
    """Return the first series of a modality, by UID, for filters to aim at."""
    return truth[min(select(truth, lambda s: s["Modality"] == Modality))]


# -- everything ----------------------------------------------------------------


def test_no_filter_lists_every_series_orthanc_holds(
    orthanc: OrthancServer, truth: Truth, query: Callable[..., Run]
) -> None:
    run = query(orthanc.dicom_port)

    assert run.code == 0, run.stderr
    assert run.error_lines == []
    rows = {row["SeriesInstanceUID"]: row for row in run.rows}
    assert len(rows) == len(run.rows) == len(truth)
    assert set(rows) == set(truth)
    for uid, series in truth.items():
        for keyword in COMPARED:
            assert rows[uid][keyword] == field_of(series, keyword), (uid, keyword)
        count = str(series["NumberOfSeriesRelatedInstances"])
        assert rows[uid]["NumberOfSeriesRelatedInstances"] == count


def test_success_txt_has_the_contract_format(
    orthanc: OrthancServer, truth: Truth, query: Callable[..., Run]
) -> None:
    run = query(orthanc.dicom_port)
    document = run.document

    assert document["status"] == "success"
    assert document["complete"] is True
    assert document["command"].startswith("pacsquery ")
    assert f"--pacs-port {orthanc.dicom_port}" in document["command"]
    assert document["series_count"] == len(truth)
    total = sum(s["NumberOfSeriesRelatedInstances"] for s in truth.values())
    assert document["instance_count"] == total == orthanc.instance_count()
    for position, row in enumerate(document["data"]):
        assert list(row) == [*COLUMNS, "uid"]
        assert row["uid"] == {"label": "uid", "tag": 0, "value": position}
        assert row["PatientID"]["tag"] == "0010,0020"
        for keyword in COLUMNS:
            assert row[keyword]["label"] == keyword
            assert isinstance(row[keyword]["value"], str)


def test_rows_carry_the_study_and_patient_attributes_of_the_files(
    orthanc: OrthancServer, corpus: Corpus, query: Callable[..., Run]
) -> None:
    run = query(orthanc.dicom_port)
    rows = {row["SeriesInstanceUID"]: row for row in run.rows}

    for item in corpus:
        ds = dcmread(item.path, stop_before_pixels=True)
        row = rows[item.SeriesInstanceUID]
        assert row["PatientSex"] == str(ds.get("PatientSex", "") or "")
        assert row["PatientBirthDate"] == str(ds.get("PatientBirthDate", "") or "")
        assert row["ModalitiesInStudy"] == item.Modality


def test_rows_are_in_a_stable_order(
    orthanc: OrthancServer, query: Callable[..., Run]
) -> None:
    first = [row["SeriesInstanceUID"] for row in query(orthanc.dicom_port).rows]
    again = [row["SeriesInstanceUID"] for row in query(orthanc.dicom_port).rows]
    assert first == again


def test_return_keys_add_columns_from_each_level(
    orthanc: OrthancServer, corpus: Corpus, query: Callable[..., Run]
) -> None:
    keywords = ["StudyTime", "Manufacturer", "SliceThickness"]
    run = query(orthanc.dicom_port, "--return-keys", ",".join(keywords))

    assert run.code == 0, run.stderr
    rows = {row["SeriesInstanceUID"]: row for row in run.rows}
    assert all(list(row)[-4:] == [*keywords, "uid"] for row in run.rows)
    for item in corpus:
        ds = dcmread(item.path, stop_before_pixels=True)
        for keyword in keywords:
            expected = element_text(ds, keyword) or ""
            assert rows[item.SeriesInstanceUID][keyword] == expected, keyword


# -- filters -------------------------------------------------------------------


@dataclass(frozen=True)
class FilterCase:
    """A filter, built from what Orthanc holds, and the series it must find."""

    name: str
    args: Callable[[Truth], list[str]]
    keep: Callable[[Truth, SeriesTruth], bool]


def _same(keyword: str, Modality: str) -> Callable[[Truth, SeriesTruth], bool]:
    """Keep the series whose ``keyword`` is that of the first series of a modality."""

    def keep(truth: Truth, series: SeriesTruth) -> bool:
        aim = one_series(truth, Modality)
        return field_of(series, keyword) == field_of(aim, keyword)

    return keep


FILTER_CASES = [
    FilterCase(
        "patient id",
        lambda t: ["--patient-id", "4MR1"],
        lambda t, s: s["PatientID"] == "4MR1",
    ),
    FilterCase(
        "patient name",
        lambda t: ["--patient-name", "CompressedSamples^CT1"],
        lambda t, s: s["PatientName"] == "CompressedSamples^CT1",
    ),
    FilterCase(
        "patient name wildcard",
        lambda t: ["--patient-name", "CompressedSamples^*"],
        lambda t, s: s["PatientName"].startswith("CompressedSamples^"),
    ),
    FilterCase(
        "patient name one-character wildcard",
        lambda t: ["--patient-name", "CompressedSamples^?R1"],
        lambda t, s: s["PatientName"] == "CompressedSamples^MR1",
    ),
    FilterCase(
        "accession number",
        lambda t: ["--accession-number", one_series(t, "CT")["AccessionNumber"]],
        _same("AccessionNumber", "CT"),
    ),
    FilterCase(
        "study date",
        lambda t: ["--study-date", "20040826"],
        lambda t, s: s["StudyDate"] == "20040826",
    ),
    FilterCase(
        "study date with dashes",
        lambda t: ["--study-date", "2005-08-26"],
        lambda t, s: s["StudyDate"] == "20050826",
    ),
    FilterCase(
        "study date range",
        lambda t: ["--study-date", "20040101-2004-12-31"],
        lambda t, s: "20040101" <= s["StudyDate"] <= "20041231",
    ),
    FilterCase(
        "study date from",
        lambda t: ["--study-date", "2019-01-01-"],
        lambda t, s: s["StudyDate"] >= "20190101",
    ),
    FilterCase(
        "study date until",
        lambda t: ["--study-date", "-20040131"],
        lambda t, s: "" < s["StudyDate"] <= "20040131",
    ),
    FilterCase(
        "modality",
        lambda t: ["--modality", "MR"],
        lambda t, s: s["Modality"] == "MR",
    ),
    FilterCase(
        "modality in lower case",
        lambda t: ["--modality", "nm"],
        lambda t, s: s["Modality"] == "NM",
    ),
    FilterCase(
        "two modalities",
        lambda t: ["--modality", "NM,US"],
        lambda t, s: s["Modality"] in ("NM", "US"),
    ),
    FilterCase(
        "modalities in study",
        lambda t: ["--modalities-in-study", "CT"],
        lambda t, s: s["Modality"] == "CT",
    ),
    FilterCase(
        "study description",
        lambda t: ["--study-description", one_series(t, "US")["StudyDescription"]],
        _same("StudyDescription", "US"),
    ),
    FilterCase(
        "study description wildcard",
        lambda t: ["--study-description", "Corpus study mr*"],
        lambda t, s: s["StudyDescription"].startswith("Corpus study mr"),
    ),
    FilterCase(
        "series description",
        lambda t: ["--series-description", "MR RLE Lossless"],
        lambda t, s: s["SeriesDescription"] == "MR RLE Lossless",
    ),
    FilterCase(
        "series description wildcard",
        lambda t: ["--series-description", "*JPEG*"],
        lambda t, s: "JPEG" in s["SeriesDescription"],
    ),
    FilterCase(
        "study uid",
        lambda t: ["--study-uid", one_series(t, "NM")["StudyInstanceUID"]],
        _same("StudyInstanceUID", "NM"),
    ),
    FilterCase(
        "series uid",
        lambda t: ["--series-uid", one_series(t, "CT")["SeriesInstanceUID"]],
        _same("SeriesInstanceUID", "CT"),
    ),
    FilterCase(
        "two series uids",
        lambda t: [
            "--series-uid",
            ",".join(one_series(t, m)["SeriesInstanceUID"] for m in ("CT", "US")),
        ],
        lambda t, s: (
            s["SeriesInstanceUID"]
            in {one_series(t, m)["SeriesInstanceUID"] for m in ("CT", "US")}
        ),
    ),
    FilterCase(
        "filters of both levels",
        lambda t: ["--patient-id", "4MR1", "--series-description", "*JPEG*"],
        lambda t, s: s["PatientID"] == "4MR1" and "JPEG" in s["SeriesDescription"],
    ),
    FilterCase(
        "--filter",
        lambda t: ["--filter", "PatientID=4MR1,SeriesNumber=1"],
        lambda t, s: s["PatientID"] == "4MR1" and s["SeriesNumber"] == "1",
    ),
    FilterCase(
        "nothing matches",
        lambda t: ["--patient-id", "1CT1", "--modality", "MR"],
        lambda t, s: False,
    ),
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=[c.name for c in FILTER_CASES])
def test_each_filter_finds_exactly_the_matching_series(
    orthanc: OrthancServer, truth: Truth, query: Callable[..., Run], case: FilterCase
) -> None:
    expected = select(truth, lambda s: case.keep(truth, s))
    if case.name != "nothing matches":
        assert expected, "the corpus holds nothing for this filter to find"
        assert expected != set(truth), "the filter would not filter anything"

    run = query(orthanc.dicom_port, *case.args(truth))

    assert run.code == 0, run.stderr
    assert run.series_uids == expected
    assert len(run.rows) == len(expected)
    assert run.document["complete"] is True


def test_seed_era_aliases_parse_to_the_same_options() -> None:
    seed = parser.parse_args(
        [
            "--aet", "ME", "--aec", "PACS", "--serverIP", "127.0.0.1",
            "--serverPort", "1104", "--patientID", "P1", "--patientName", "A^B",
            "--studyDate", "20040826", "--modalitiesInStudy", "MR",
            "--studyDescription", "Brain", "--seriesDescription", "T1",
        ]
    )  # fmt: skip
    kebab = parser.parse_args(
        [
            "--calling-aet", "ME", "--called-aet", "PACS", "--pacs-host",
            "127.0.0.1", "--pacs-port", "1104", "--patient-id", "P1",
            "--patient-name", "A^B", "--study-date", "20040826",
            "--modalities-in-study", "MR", "--study-description", "Brain",
            "--series-description", "T1",
        ]
    )  # fmt: skip
    assert vars(seed) == vars(kebab)
    assert seed.calling_aet == "ME"
    assert seed.pacs_port == 1104


SEED_ERA_ALIASES = {
    "--aet": "calling_aet",
    "--aec": "called_aet",
    "--serverIP": "pacs_host",
    "--serverPort": "pacs_port",
    "--patientID": "patient_id",
    "--patientName": "patient_name",
    "--studyDate": "study_date",
    "--modalitiesInStudy": "modalities_in_study",
    "--studyDescription": "study_description",
    "--seriesDescription": "series_description",
}


def test_every_seed_era_alias_comes_before_its_kebab_case_flag() -> None:
    # chris_plugin shows the last option string as the flag.
    aliases: dict[str, str] = {}
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            *seed_era, flag = action.option_strings
            assert flag.removeprefix("--").replace("-", "_") == action.dest
            aliases.update((alias, action.dest) for alias in seed_era)
    assert aliases == SEED_ERA_ALIASES


def test_every_default_is_a_plain_value() -> None:
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            assert type(action.default) in (str, int, float, bool), action.dest


# -- character sets ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "PatientID"),
    [
        # NOTE: chrX1.dcm stores "Wang^XiaoDong=王^小東=" (an empty phonetic group
        # at the end), pydicom drops that "=" when it encodes a filter, and
        # Orthanc 1.10.1 matches a PN literally: only a trailing * finds it.
        ("Wang^XiaoDong=王^小東*", "X1EXAMPLE"),
        ("*王^小東*", "X1EXAMPLE"),
        ("Äneas^Rüdiger", "SCSGERM"),
        ("äneas*", "SCSGERM"),
        ("*Rüdiger", "SCSGERM"),
    ],
)
def test_a_non_ascii_patient_name_is_sent_and_decoded_as_utf8(
    orthanc: OrthancServer,
    truth: Truth,
    query: Callable[..., Run],
    name: str,
    PatientID: str,
) -> None:
    run = query(orthanc.dicom_port, "--patient-name", name)

    assert run.code == 0, run.stderr
    assert run.series_uids == select(truth, lambda s: s["PatientID"] == PatientID)
    expected = next(
        s["PatientName"] for s in truth.values() if s["PatientID"] == PatientID
    )
    assert [row["PatientName"] for row in run.rows] == [expected]
    raw = (run.outputdir / SUCCESS_FILE).read_bytes()
    assert expected.encode("utf-8") in raw


def test_answers_in_another_character_set_are_decoded_with_it(
    tmp_path: Path, corpus: Corpus, query: Callable[..., Run]
) -> None:
    """An Orthanc whose DefaultEncoding is Latin-1 answers in ISO_IR 100."""
    german = [item for item in corpus if item.PatientID == "SCSGERM"]
    modalities = {LISTENER_AET: (LISTENER_AET, LOOPBACK, free_port())}
    with OrthancServer(
        tmp_path / "orthanc", modalities=modalities, default_encoding="Latin1"
    ) as latin1:
        for item in german:
            latin1.upload(item.path)
        run = query(latin1.dicom_port)

    assert run.code == 0, run.stderr
    assert [row["PatientName"] for row in run.rows] == ["Äneas^Rüdiger"]


# -- failures ------------------------------------------------------------------


def test_an_unreachable_pacs_is_one_error_line_and_exit_1(
    query: Callable[..., Run],
) -> None:
    run = query(free_port(), "--connect-timeout", "2")

    assert run.code == 1
    assert len(run.error_lines) == 1
    assert "cannot connect" in run.error_lines[0]
    assert "Traceback" not in run.stderr
    assert not (run.outputdir / SUCCESS_FILE).exists()
    assert run.error_document["status"] == "error"
    assert run.error_document["message"] in run.error_lines[0]


def test_a_calling_ae_unknown_to_orthanc_is_named_in_the_error(
    orthanc: OrthancServer, query: Callable[..., Run]
) -> None:
    run = query(orthanc.dicom_port, "--calling-aet", "STRANGER")

    assert run.code == 1
    assert len(run.error_lines) == 1
    assert "dropped the association" in run.error_lines[0]
    assert "STRANGER" in run.error_lines[0]
    assert "DicomModalities" in run.error_lines[0]
    assert not (run.outputdir / SUCCESS_FILE).exists()
    assert run.error_document["status"] == "error"


@pytest.mark.parametrize(
    "args",
    [
        ["--study-date", "2023-02-30"],
        ["--study-date", "20231301"],
        ["--study-date", "yesterday"],
        ["--calling-aet", "A_TITLE_LONGER_THAN_16"],
        ["--called-aet", ""],
        ["--pacs-port", "70000"],
        ["--study-uid", "1.2.*"],
        ["--filter", "NoSuchKeyword=1"],
        ["--return-keys", "ReferencedImageSequence"],
        ["--return-keys", "PixelData"],
        ["--return-keys", "7fe0,0010"],
        ["--return-keys", "PatientName,IconImageSequence"],
        ["--filter", "PixelData=1"],
        ["--log-level", "LOUD"],
        ["--dimse-timeout", "0"],
    ],
)
def test_a_bad_option_value_is_exit_2_before_any_network(
    query: Callable[..., Run], args: list[str]
) -> None:
    # Nothing listens on this port: an exit 2 shows the value was refused first.
    run = query(free_port(), *args)

    assert run.code == 2, run.stderr
    assert len(run.error_lines) == 1
    assert "cannot connect" not in run.stderr
    assert not (run.outputdir / SUCCESS_FILE).exists()
    assert run.error_document["status"] == "error"


def test_a_failed_query_removes_the_results_of_an_earlier_run(
    orthanc: OrthancServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputdir, outputdir = tmp_path / "in", tmp_path / "out"
    inputdir.mkdir()
    options = parser.parse_args(["--pacs-port", str(orthanc.dicom_port)])
    assert main(options, inputdir, outputdir) == 0
    assert (outputdir / SUCCESS_FILE).exists()

    options = parser.parse_args(
        ["--pacs-port", str(orthanc.dicom_port), "--study-date", "x"]
    )
    assert main(options, inputdir, outputdir) == 2
    assert not (outputdir / SUCCESS_FILE).exists()
    assert (outputdir / ERROR_FILE).exists()
    assert sorted(p.name for p in outputdir.iterdir()) == [ERROR_FILE]


# -- protocol, against SCPs of our own -----------------------------------------


@dataclass
class FakePacs:
    """A Study Root C-FIND SCP that answers as a test tells it to."""

    study_statuses: list[int] = field(default_factory=lambda: [STATUS_SUCCESS])
    delay: float = 0.0
    identifiers: list[Dataset] = field(default_factory=list)
    associations: int = 0
    port: int = 0

    def on_accepted(self, event: evt.Event) -> None:
        """Count associations."""
        self.associations += 1

    def on_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        """Answer two studies, then one series per study, as configured."""
        request = event.identifier
        self.identifiers.append(request)
        time.sleep(self.delay)
        if request.QueryRetrieveLevel == "STUDY":
            for n, status in enumerate(self.study_statuses):
                yield status, self.study(n) if status == STATUS_PENDING else None
            return
        yield STATUS_PENDING, self.series(request.StudyInstanceUID)
        yield STATUS_SUCCESS, None

    @staticmethod
    def study(n: int) -> Dataset:
        """Return the answer for study ``n``."""
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = f"1.2.3.{n}"
        ds.PatientID = f"P{n}"
        ds.PatientName = "Müller^Jürgen"
        return ds

    @staticmethod
    def series(StudyInstanceUID: str) -> Dataset:
        """Return the answer for the one series of a study."""
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = StudyInstanceUID
        ds.SeriesInstanceUID = StudyInstanceUID + ".1"
        ds.Modality = "CT"
        ds.NumberOfSeriesRelatedInstances = 3
        return ds


@contextmanager
def serve_fake_pacs() -> Iterator[FakePacs]:
    """Run a FakePacs on a free loopback port while in the context."""
    pacs = FakePacs()
    ae = AE(ae_title="FAKEPACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    pacs.port = free_port()
    server = ae.start_server(
        (LOOPBACK, pacs.port),
        block=False,
        evt_handlers=[
            (evt.EVT_C_FIND, pacs.on_find),
            (evt.EVT_ACCEPTED, pacs.on_accepted),
        ],
    )
    assert isinstance(server, ThreadedAssociationServer)
    try:
        yield pacs
    finally:
        server.shutdown()


@pytest.fixture
def fake_pacs() -> Iterator[FakePacs]:
    """Run a FakePacs on a free loopback port."""
    with serve_fake_pacs() as pacs:
        yield pacs


def test_studies_then_series_over_one_association(
    fake_pacs: FakePacs, query: Callable[..., Run]
) -> None:
    fake_pacs.study_statuses = [STATUS_PENDING, STATUS_PENDING, STATUS_SUCCESS]
    run = query(fake_pacs.port, "--called-aet", "FAKEPACS", "--modality", "CT")

    assert run.code == 0, run.stderr
    assert fake_pacs.associations == 1
    levels = [str(ds.QueryRetrieveLevel) for ds in fake_pacs.identifiers]
    assert levels == ["STUDY", "SERIES", "SERIES"]
    assert [row["PatientName"] for row in run.rows] == ["Müller^Jürgen"] * 2
    assert [row["NumberOfSeriesRelatedInstances"] for row in run.rows] == ["3", "3"]
    assert run.document["instance_count"] == 6


def test_identifiers_carry_level_charset_and_empty_universal_keys(
    fake_pacs: FakePacs, query: Callable[..., Run]
) -> None:
    fake_pacs.study_statuses = [STATUS_PENDING, STATUS_SUCCESS]
    run = query(fake_pacs.port, "--modality", "CT", "--patient-id", "P*")

    assert run.code == 0, run.stderr
    study, series = fake_pacs.identifiers
    assert "SpecificCharacterSet" in study and "SpecificCharacterSet" in series
    assert set(study.dir()) == {
        "QueryRetrieveLevel",
        "SpecificCharacterSet",
        *STUDY_COLUMNS,
    }
    assert set(series.dir()) == {
        "QueryRetrieveLevel", "SpecificCharacterSet", "StudyInstanceUID",
        *SERIES_COLUMNS,
    }  # fmt: skip
    assert series.StudyInstanceUID == "1.2.3.0"
    assert study.PatientID == "P*"
    assert series.Modality == "CT"
    for ds in (study, series):
        for elem in ds:
            if elem.keyword not in ("QueryRetrieveLevel", "PatientID", "Modality",
                                    "StudyInstanceUID"):  # fmt: skip
                assert elem.value in (None, "", []), elem.keyword


def test_a_cancel_keeps_the_rows_and_marks_them_incomplete(
    fake_pacs: FakePacs, query: Callable[..., Run]
) -> None:
    fake_pacs.study_statuses = [STATUS_PENDING, STATUS_CANCEL]
    run = query(fake_pacs.port)

    assert run.code == 1
    assert len(run.error_lines) == 1
    assert "0xFE00" in run.error_lines[0]
    assert run.document["complete"] is False
    assert run.series_uids == {"1.2.3.0.1"}
    assert not (run.outputdir / ERROR_FILE).exists()


def test_a_failure_status_is_exit_1_without_success_txt(
    fake_pacs: FakePacs, query: Callable[..., Run]
) -> None:
    fake_pacs.study_statuses = [STATUS_PENDING, STATUS_OUT_OF_RESOURCES]
    run = query(fake_pacs.port)

    assert run.code == 1
    assert len(run.error_lines) == 1
    assert "0xA700" in run.error_lines[0]
    assert "out of resources" in run.error_lines[0]
    assert not (run.outputdir / SUCCESS_FILE).exists()
    assert "0xA700" in run.error_document["message"]


def test_a_pacs_that_does_not_answer_in_time_is_exit_1(
    fake_pacs: FakePacs, query: Callable[..., Run]
) -> None:
    fake_pacs.delay = 3.0
    run = query(fake_pacs.port, "--dimse-timeout", "0.5")

    assert run.code == 1
    assert len(run.error_lines) == 1
    assert "no answer" in run.error_lines[0]
    assert "--dimse-timeout" in run.error_lines[0]
    assert not (run.outputdir / SUCCESS_FILE).exists()


# -- the console script ----------------------------------------------------------


def run_script(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``pacsquery`` console script."""
    script = Path(sys.executable).with_name("pacsquery")
    command = [str(script)] if script.exists() else ["pacsquery"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_the_console_script_queries_with_options_from_the_environment(
    orthanc: OrthancServer, truth: Truth, tmp_path: Path
) -> None:
    inputdir, outputdir = tmp_path / "in", tmp_path / "out"
    inputdir.mkdir()
    env = {"PACSQUERY_PACS_PORT": str(orthanc.dicom_port)}

    done = run_script("--modality", "MR", str(inputdir), str(outputdir), env=env)

    assert done.returncode == 0, done.stderr
    assert "error:" not in done.stderr
    rows = load_rows(outputdir / SUCCESS_FILE)
    assert {r["SeriesInstanceUID"] for r in rows} == select(
        truth, lambda s: s["Modality"] == "MR"
    )
    document = json.loads((outputdir / SUCCESS_FILE).read_text("utf-8"))
    assert f"--pacs-port {orthanc.dicom_port}" in document["command"]
    # INFO names peers and counts, never a patient.
    assert "4MR1" not in done.stderr and "CompressedSamples" not in done.stderr


def test_the_console_script_reports_a_bad_value_in_one_line(tmp_path: Path) -> None:
    inputdir = tmp_path / "in"
    inputdir.mkdir()
    done = run_script(
        "--study-date", "2023-02-30", str(inputdir), str(tmp_path / "out")
    )

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --study-date '2023-02-30': 2023-02-30 is not a date (day is out of "
        "range for month); use YYYYMMDD or YYYY-MM-DD"
    ]
    assert done.stdout == ""


def test_the_console_script_shows_a_traceback_only_at_debug(tmp_path: Path) -> None:
    inputdir = tmp_path / "in"
    inputdir.mkdir()
    port = str(free_port())
    args = ["--pacs-port", port, str(inputdir), str(tmp_path / "out")]

    quiet = run_script(*args)
    loud = run_script("--log-level", "DEBUG", *args)

    assert quiet.returncode == loud.returncode == 1
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr
    assert len([ln for ln in loud.stderr.splitlines() if ln.startswith("error:")]) == 1
