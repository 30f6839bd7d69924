"""pacsquery against PACSes of its own: names, times, character sets, models.

Two Orthancs of this module's own (DefaultEncoding Utf8 and Latin1) hold the
charset samples of ``pydicom/data/charset_files`` with fresh UIDs, and a patient
``DOE^JOHN^^^`` (trailing empty components) whose study was at 10:15:30. Small
pynetdicom SCPs answer what Orthanc never sends: ISO 2022 and GB18030 answers,
bytes that do not decode, and a record of every identifier sent.
"""

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.dsutils import decode, encode
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
from test_pacsquery import Run, Truth, make_query, saved_logging

from corpus import CHARSET_DIR
from orthanc import LISTENER_AET, LOOPBACK, OrthancServer, free_port
from pacsquery.levels import PATIENT_LEVEL_KEYWORDS, STUDY_LEVEL_KEYWORDS
from pacsquery.query import decoded
from pacsquery.table import RESULTS_TABLE

#: Charset samples and the language each stands for.
SAMPLES = {
    "chrGerm.dcm": "Latin-1",
    "chrFren.dcm": "Latin-1",
    "chrRuss.dcm": "Cyrillic",
    "chrH31.dcm": "Japanese",
    "chrJapMulti.dcm": "Japanese",
    "chrX2.dcm": "Chinese",
}
STATUS_PENDING = 0xFF00
STATUS_SUCCESS = 0x0000


def fresh_copy(source: Path, dest: Path, **attributes: str) -> Path:
    """Write ``source`` with new UIDs (and ``attributes``) at ``dest``."""
    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds.save_as(dest, enforce_file_format=True)
    return dest


def decoded_name(path: Path) -> str:
    """Return a file's PatientName as pydicom decodes it from its own charset."""
    return str(pydicom.dcmread(path).PatientName)


@dataclass
class OwnPacs:
    """An Orthanc of this module, and the files it was given."""

    server: OrthancServer
    files: dict[str, Path]


def seeded(workdir: Path, encoding: str) -> Iterator[OwnPacs]:
    """Run an Orthanc with the samples and the DOE patients uploaded."""
    workdir.mkdir()
    files = {name: fresh_copy(CHARSET_DIR / name, workdir / name) for name in SAMPLES}
    german = CHARSET_DIR / "chrGerm.dcm"
    for name, PatientName, StudyTime in [
        ("doe.dcm", "DOE^JOHN^^^", "101530"),
        ("doeson.dcm", "DOE^JOHNSON", "111500"),
    ]:
        files[name] = fresh_copy(
            german,
            workdir / name,
            PatientName=PatientName,
            PatientID=name.removesuffix(".dcm").upper(),
            StudyTime=StudyTime,
        )
    modalities = {LISTENER_AET: (LISTENER_AET, LOOPBACK, free_port())}
    with OrthancServer(
        workdir / "orthanc", modalities=modalities, default_encoding=encoding
    ) as server:
        for path in files.values():
            assert server.upload(path)["Status"] == "Success"
        yield OwnPacs(server, files)


@pytest.fixture(scope="module")
def utf8_pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPacs]:
    """Run an Orthanc whose DefaultEncoding is Utf8."""
    yield from seeded(tmp_path_factory.mktemp("utf8") / "pacs", "Utf8")


@pytest.fixture(scope="module")
def latin1_pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPacs]:
    """Run an Orthanc whose DefaultEncoding is Latin1."""
    yield from seeded(tmp_path_factory.mktemp("latin1") / "pacs", "Latin1")


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


def names_by_id(run: Run) -> dict[str, str]:
    """Return PatientName by PatientID, from the rows."""
    return {row["PatientID"]: row["PatientName"] for row in run.rows}


# -- person names ----------------------------------------------------------------


@pytest.mark.parametrize("model", ["study", "patient"])
def test_a_name_typed_without_wildcards_finds_it_with_trailing_empty_components(
    utf8_pacs: OwnPacs, query: Callable[..., Run], model: str
) -> None:
    port = utf8_pacs.server.dicom_port
    run = query(port, "--patient-name", "DOE^JOHN", "--query-model", model)

    assert run.code == 0, run.stderr
    assert names_by_id(run) == {"DOE": "DOE^JOHN^^^"}
    wildcard = query(port, "--patient-name", "doe^john*", "--query-model", model)
    assert set(names_by_id(wildcard)) == {"DOE", "DOESON"}


# -- times ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("StudyTime", "found"),
    [
        ("-1015", {"DOE"}),
        ("10:15", {"DOE"}),
        ("101530", {"DOE"}),
        ("1015-1115", {"DOE", "DOESON"}),
        ("10-11", {"DOE", "DOESON"}),
        ("1016-", {"DOESON"}),
        ("-1014", set()),
    ],
)
def test_a_time_of_partial_precision_means_its_whole_minute(
    utf8_pacs: OwnPacs, query: Callable[..., Run], StudyTime: str, found: set[str]
) -> None:
    run = query(
        utf8_pacs.server.dicom_port,
        "--study-time",
        StudyTime,
        "--patient-id",
        "DOE*",
        "--return-keys",
        "StudyTime",
    )

    assert run.code == 0, run.stderr
    assert set(names_by_id(run)) == found


# -- character sets ---------------------------------------------------------------


def test_a_utf8_pacs_answers_every_language_decoded(
    utf8_pacs: OwnPacs, query: Callable[..., Run]
) -> None:
    run = query(utf8_pacs.server.dicom_port)

    assert run.code == 0, run.stderr
    names = names_by_id(run)
    for name in SAMPLES:
        path = utf8_pacs.files[name]
        expected = decoded_name(path).rstrip("=")
        assert names[str(pydicom.dcmread(path).PatientID)] == expected, name


def test_a_latin1_pacs_answers_in_latin1_and_loses_only_what_it_cannot_hold(
    latin1_pacs: OwnPacs, query: Callable[..., Run]
) -> None:
    run = query(latin1_pacs.server.dicom_port)

    assert run.code == 0, run.stderr
    assert run.error_lines == []
    names = names_by_id(run)
    assert names["SCSGERM"] == "Äneas^Rüdiger"
    assert names["SCSFREN"] == "Buc^Jérôme"
    # NOTE: Orthanc 1.10.1 drops the characters Latin-1 cannot hold from its
    # answers (Cyrillic, kanji, hanzi); what is left must come through intact.
    assert names["H31EXAMPLE"].startswith("Yamada^Tarou=")
    assert names["X2EXAMPLE"].startswith("Wang^XiaoDong=")


@pytest.mark.parametrize(
    ("name", "PatientID"),
    [
        ("Люкceмбypг", "SCSRUSS"),
        ("*山田^太郎*", "H31EXAMPLE"),
        ("Wang^XiaoDong=王^小东", "X2EXAMPLE"),
        ("やまだ^たろう", "2008-4"),
    ],
)
@pytest.mark.parametrize("encoding", ["utf8", "latin1"])
def test_non_ascii_filters_find_the_name_on_either_pacs(
    request: pytest.FixtureRequest,
    query: Callable[..., Run],
    encoding: str,
    name: str,
    PatientID: str,
) -> None:
    pacs: OwnPacs = request.getfixturevalue(f"{encoding}_pacs")
    run = query(pacs.server.dicom_port, "--patient-name", name)

    assert run.code == 0, run.stderr
    assert set(names_by_id(run)) == {PatientID}


def test_a_filter_in_a_declared_character_set(
    latin1_pacs: OwnPacs, query: Callable[..., Run]
) -> None:
    run = query(
        latin1_pacs.server.dicom_port,
        "--patient-name",
        "Buc^Jérôme",
        "--character-set",
        "ISO_IR 100",
    )

    assert run.code == 0, run.stderr
    assert names_by_id(run) == {"SCSFREN": "Buc^Jérôme"}


@pytest.mark.parametrize(
    ("name", "charset"),
    [("Люкceмбypг", "ISO_IR 100"), ("Äneas", "ISO_IR 999")],
)
def test_a_filter_the_declared_character_set_cannot_hold_is_exit_2(
    query: Callable[..., Run], name: str, charset: str
) -> None:
    run = query(free_port(), "--patient-name", name, "--character-set", charset)

    assert run.code == 2, run.stderr
    assert len(run.error_lines) == 1
    assert "--character-set" in run.error_lines[0]


# -- models -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [[], ["--patient-id", "4MR1", "--modality", "MR"], ["--study-date", "2004"]],
)
def test_patient_root_finds_what_study_root_finds(
    orthanc: OrthancServer, query: Callable[..., Run], args: list[str]
) -> None:
    study_root = query(orthanc.dicom_port, *args)
    patient_root = query(orthanc.dicom_port, "--query-model", "patient", *args)

    assert study_root.code == patient_root.code == 0, patient_root.stderr
    assert study_root.series_uids
    assert sorted(map(sorted_items, patient_root.rows)) == sorted(
        map(sorted_items, study_root.rows)
    )


def sorted_items(row: dict[str, str]) -> list[tuple[str, str]]:
    """Return a row's items without its position, for comparing row sets."""
    return sorted((k, v) for k, v in row.items() if k != "uid")


def test_an_unknown_query_model_is_exit_2(query: Callable[..., Run]) -> None:
    run = query(free_port(), "--query-model", "worklist")

    assert run.code == 2
    assert "--query-model" in run.error_lines[0]


# -- tags, UID lists and the summary, against the session's Orthanc ----------------


def test_keys_by_tag_filter_and_add_columns_to_every_row(
    orthanc: OrthancServer, truth: Truth, query: Callable[..., Run]
) -> None:
    run = query(
        orthanc.dicom_port,
        "--filter",
        "(0008,0060)=MR",
        "--return-keys",
        "0018,0015,(0008,0030)",
    )

    assert run.code == 0, run.stderr
    expected = {uid for uid, s in truth.items() if s["Modality"] == "MR"}
    assert run.series_uids == expected
    for row in run.document["data"]:
        assert list(row)[-3:] == ["BodyPartExamined", "StudyTime", "uid"]
        assert row["BodyPartExamined"]["tag"] == "0018,0015"


def test_a_long_uid_list_is_split_and_merged_without_duplicates(
    orthanc: OrthancServer, truth: Truth, query: Callable[..., Run]
) -> None:
    uids = sorted(truth)
    studies = sorted({s["StudyInstanceUID"] for s in truth.values()})
    run = query(
        orthanc.dicom_port,
        "--series-uid",
        ",".join(uids + uids[:3]),
        "--study-uid",
        ",".join(studies),
        "--uids-per-query",
        "2",
    )

    assert run.code == 0, run.stderr
    assert sorted(row["SeriesInstanceUID"] for row in run.rows) == uids
    assert run.document["study_count"] == len(studies)


def test_study_count_is_of_the_studies_the_rows_hold(
    orthanc: OrthancServer, query: Callable[..., Run]
) -> None:
    every = {t["StudyInstanceUID"] for t in orthanc.series_truth().values()}
    run = query(orthanc.dicom_port, "--modality", "MR")

    assert run.code == 0, run.stderr
    studies = {row["StudyInstanceUID"]["value"] for row in run.document["data"]}
    # A series filter leaves out studies that matched at STUDY level.
    assert 0 < len(studies) < len(every)
    assert run.document["study_count"] == len(studies)
    table = (run.outputdir / RESULTS_TABLE).read_text("utf-8")
    assert table.startswith(f"{len(studies)} studies, ")


def test_results_txt_lists_studies_and_series_by_row_number(
    orthanc: OrthancServer, query: Callable[..., Run]
) -> None:
    run = query(orthanc.dicom_port, "--modality", "MR", "--log-level", "INFO")

    assert run.code == 0, run.stderr
    table = (run.outputdir / RESULTS_TABLE).read_text("utf-8")
    lines = table.splitlines()
    assert lines[0].startswith(f"{run.document['study_count']} studies, ")
    for row in run.document["data"]:
        number = row["uid"]["value"]
        # Table lines are indented; the summary line above them is not.
        series = [
            ln.split()
            for ln in lines
            if ln.startswith("  ") and ln.split()[:1] == [str(number)]
        ]
        assert series, number
        assert series[0][1:3] == [row["SeriesNumber"]["value"], "MR"]
    assert "study 2004-08-26  MR" in table
    assert "4MR1" not in table and "CompressedSamples" not in table
    assert lines[2] in run.stderr


# -- answers Orthanc never sends ------------------------------------------------------


@dataclass
class ScriptedPacs:
    """A C-FIND SCP (both models) that answers each study request as scripted."""

    studies: list[Dataset] = field(default_factory=list)
    identifiers: list[Dataset] = field(default_factory=list)
    associations: int = 0
    port: int = 0

    def on_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        """Answer the scripted studies, then one series per study."""
        request = event.identifier
        self.identifiers.append(request)
        if request.QueryRetrieveLevel == "STUDY":
            for study in self.studies:
                yield STATUS_PENDING, study
        else:
            answer = Dataset()
            answer.SeriesInstanceUID = f"{request.StudyInstanceUID}.1"
            answer.Modality = "OT"
            yield STATUS_PENDING, answer
        yield STATUS_SUCCESS, None

    def on_accepted(self, event: evt.Event) -> None:
        """Count associations."""
        self.associations += 1


@pytest.fixture
def scripted() -> Iterator[ScriptedPacs]:
    """Run a ScriptedPacs on a free loopback port."""
    pacs = ScriptedPacs(port=free_port())
    ae = AE(ae_title="ORTHANC")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
    handlers = [(evt.EVT_C_FIND, pacs.on_find), (evt.EVT_ACCEPTED, pacs.on_accepted)]
    server = ae.start_server((LOOPBACK, pacs.port), block=False, evt_handlers=handlers)
    try:
        yield pacs
    finally:
        server.shutdown()


def study_from(name: str, n: int) -> Dataset:
    """Return a study answer holding a sample's charset and name, undecoded."""
    sample = pydicom.dcmread(CHARSET_DIR / name)
    ds = Dataset()
    ds.SpecificCharacterSet = sample.SpecificCharacterSet
    ds.PatientName = sample.PatientName
    ds.PatientID = sample.PatientID
    ds.StudyInstanceUID = f"1.2.3.{n}"
    return ds


def test_answers_in_iso_2022_and_gb18030_are_decoded_with_their_own_charset(
    scripted: ScriptedPacs, query: Callable[..., Run]
) -> None:
    names = ["chrH31.dcm", "chrH32.dcm", "chrI2.dcm", "chrX2.dcm", "chrRuss.dcm"]
    scripted.studies = [study_from(name, n) for n, name in enumerate(names)]
    run = query(scripted.port)

    assert run.code == 0, run.stderr
    expected = [decoded_name(CHARSET_DIR / name).rstrip("=") for name in names]
    assert [row["PatientName"] for row in run.rows] == expected
    assert "山田^太郎" in expected[0] and "王^小东" in expected[3]


def test_undecodable_bytes_are_replaced_with_a_warning(
    scripted: ScriptedPacs, query: Callable[..., Run]
) -> None:
    bad = Dataset()
    bad.SpecificCharacterSet = "ISO_IR 192"
    bad[0x00100010] = DataElement(0x00100010, "PN", b"Bad\xff\xfe^Name")
    bad.StudyInstanceUID = "1.2.3.9"
    scripted.studies = [bad, study_from("chrGerm.dcm", 8)]
    run = query(scripted.port)

    assert run.code == 0, run.stderr
    names = {row["PatientName"] for row in run.rows}
    assert names == {"Bad\ufffd\ufffd^Name", "Äneas^Rüdiger"}
    warned = [ln for ln in run.stderr.splitlines() if " WARNING pacsquery" in ln]
    assert any("decode" in line for line in warned), warned


def test_an_unknown_character_set_decodes_what_it_can() -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds[0x00100010] = DataElement(0x00100010, "PN", b"Caf\xe9^Anne")
    ds.StudyInstanceUID = "1.2.3.7"
    raw = encode(ds, True, True)
    assert raw is not None
    with warnings.catch_warnings(record=True):
        # pynetdicom decodes the answer, which pacsquery's Finder does inside a
        # catch_warnings of its own.
        warnings.simplefilter("always")
        bytes_in = BytesIO(raw.replace(b"ISO_IR 100", b"ISO_IR 999"))
        answer = decode(bytes_in, True, True)
    record = decoded(answer, ["PatientName", "StudyInstanceUID"], "STUDY")

    # pydicom falls back on its default character set.
    assert record["PatientName"].startswith("Caf")
    assert record["PatientName"].endswith("^Anne")
    assert record["StudyInstanceUID"] == "1.2.3.7"


def test_many_studies_are_asked_for_series_over_one_association(
    scripted: ScriptedPacs, query: Callable[..., Run]
) -> None:
    scripted.studies = [study_from("chrGerm.dcm", n) for n in range(30)]
    run = query(scripted.port, "--query-model", "study")

    assert run.code == 0, run.stderr
    assert scripted.associations == 1
    assert len(scripted.identifiers) == 31
    assert len(run.rows) == 30


def test_each_level_gets_only_its_own_keys_and_the_unique_keys_above(
    scripted: ScriptedPacs, query: Callable[..., Run]
) -> None:
    scripted.studies = [study_from("chrGerm.dcm", 0)]
    run = query(
        scripted.port,
        "--patient-id",
        "P*",
        "--study-time",
        "10-11",
        "--modality",
        "OT",
        "--return-keys",
        "BodyPartExamined,PatientComments,NumberOfStudyRelatedSeries",
    )

    assert run.code == 0, run.stderr
    study, series = scripted.identifiers
    assert {e.keyword for e in study} - {
        "QueryRetrieveLevel",
        "SpecificCharacterSet",
    } <= (PATIENT_LEVEL_KEYWORDS | STUDY_LEVEL_KEYWORDS)
    assert "PatientComments" in study and "BodyPartExamined" not in study
    assert "BodyPartExamined" in series and series.StudyInstanceUID == "1.2.3.0"
    keywords = {e.keyword for e in series} - {"StudyInstanceUID"}
    assert not keywords & (PATIENT_LEVEL_KEYWORDS | STUDY_LEVEL_KEYWORDS)
    assert study.StudyTime == "100000-115959.999999"
