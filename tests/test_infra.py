"""Check the test infrastructure itself: the corpus, Orthanc, DCMTK."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE, evt
from pynetdicom.association import Association

from corpus import Corpus, build_corpus, pixel_data_bytes
from orthanc import LISTENER_AET, LOOPBACK, OrthancError, OrthancServer, free_port

ECHOSCU = "/usr/bin/echoscu"
FINDSCU = "/usr/bin/findscu"
MOVESCU = "/usr/bin/movescu"

# pynetdicom makes its SOP class constants at import time, out of mypy's sight.
VERIFICATION = UID("1.2.840.10008.1.1")
STUDY_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
STUDY_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")

STATUS_SUCCESS = 0x0000
STATUS_PENDING = 0xFF00
#: PS3.4 C.4.2.1.5: Failure, unable to process.
STATUS_UNABLE_TO_PROCESS = 0xC000


def run_dcmtk(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool with a bounded time and capture what it says."""
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=60, check=False
    )


def associate(
    orthanc: OrthancServer, calling_aet: str, aborted: threading.Event | None = None
) -> Association:
    """Open an association to Orthanc for Q/R; set ``aborted`` on A-ABORT."""
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(STUDY_ROOT_FIND)
    ae.add_requested_context(STUDY_ROOT_MOVE)
    handlers: list[evt.EventHandlerType] = []
    if aborted is not None:
        handlers.append((evt.EVT_ABORTED, lambda event: aborted.set()))
    assoc = ae.associate(
        LOOPBACK, orthanc.dicom_port, ae_title=orthanc.aet, evt_handlers=handlers
    )
    assert assoc.is_established, f"association from {calling_aet} not established"
    return assoc


def study_query() -> Dataset:
    """Return a STUDY-level identifier asking for every study."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.PatientID = ""
    return ds


def find_statuses(assoc: Association) -> list[int | None]:
    """Send one C-FIND; return each response's status (None when empty)."""
    statuses: list[int | None] = []
    rsps = assoc.send_c_find(study_query(), STUDY_ROOT_FIND)
    for status, _identifier in rsps:
        statuses.append(status.get("Status"))
    return statuses


# -- the corpus ----------------------------------------------------------------


def test_corpus_covers_transfer_syntaxes(corpus: Corpus) -> None:
    syntaxes = {item.TransferSyntaxUID for item in corpus}
    wanted = {JPEGBaseline8Bit, JPEG2000, JPEG2000Lossless, JPEGLSLossless, RLELossless}
    assert wanted <= syntaxes


def test_corpus_covers_patients_and_modalities(corpus: Corpus) -> None:
    modalities = {item.Modality for item in corpus}
    assert {"CT", "MR"} <= modalities
    assert len(modalities - {"CT", "MR"}) >= 1
    assert len(corpus.patients()) >= 4
    assert len({item.StudyDate for item in corpus}) >= 4


def test_corpus_has_non_ascii_names(corpus: Corpus) -> None:
    by_name = {item.PatientName: item.SpecificCharacterSet for item in corpus}
    assert by_name["Äneas^Rüdiger"] == "ISO_IR 100"
    assert by_name["Wang^XiaoDong=王^小東"] == "ISO_IR 192"


def test_corpus_has_long_series_and_two_study_patient(corpus: Corpus) -> None:
    longest = max(corpus.series().values(), key=len)
    assert len(longest) >= 5
    assert sorted(int(item.InstanceNumber) for item in longest) == list(
        range(1, len(longest) + 1)
    )
    studies_per_patient = {
        patient: {item.StudyInstanceUID for item in items}
        for patient, items in corpus.patients().items()
    }
    assert max(len(studies) for studies in studies_per_patient.values()) >= 2


def test_corpus_uids_unique_and_descriptors_present(corpus: Corpus) -> None:
    assert len({item.SOPInstanceUID for item in corpus}) == len(corpus)
    for item in corpus:
        assert item.AccessionNumber and item.StudyDescription, item.path.name
        assert item.SeriesDescription and item.SeriesNumber, item.path.name


def test_corpus_keeps_pixel_data_and_transfer_syntax(corpus: Corpus) -> None:
    for item in corpus:
        source = pixel_data_bytes(item.source)
        assert hashlib.sha256(source).hexdigest() == item.pixel_sha256
        assert pixel_data_bytes(item.path) == source


def test_corpus_is_deterministic(corpus: Corpus, tmp_path: Path) -> None:
    again = build_corpus(tmp_path)
    assert [i.SOPInstanceUID for i in again] == [i.SOPInstanceUID for i in corpus]
    assert [i.SeriesInstanceUID for i in again] == [i.SeriesInstanceUID for i in corpus]


# -- Orthanc -------------------------------------------------------------------


def test_orthanc_holds_exactly_the_corpus(
    orthanc: OrthancServer, corpus: Corpus
) -> None:
    truth = orthanc.series_truth()
    expected = corpus.series()
    assert set(truth) == set(expected)
    for uid, items in expected.items():
        record = truth[uid]
        assert record["SOPInstanceUIDs"] == sorted(i.SOPInstanceUID for i in items)
        assert record["NumberOfSeriesRelatedInstances"] == len(items)
        first = items[0]
        assert record["StudyInstanceUID"] == first.StudyInstanceUID
        assert record["PatientID"] == first.PatientID
        assert record["Modality"] == first.Modality
        assert record["StudyDate"] == first.StudyDate
        assert record["SeriesDescription"] == first.SeriesDescription
        assert record["AccessionNumber"] == first.AccessionNumber


def test_orthanc_reports_names_decoded(orthanc: OrthancServer) -> None:
    names = {r["PatientName"] for r in orthanc.series_truth().values()}
    assert "Äneas^Rüdiger" in names
    # series_truth drops the empty trailing group the REST API adds ("...=").
    assert "Wang^XiaoDong=王^小東" in names


def test_orthanc_stores_files_unchanged(orthanc: OrthancServer, corpus: Corpus) -> None:
    by_uid = {item.SOPInstanceUID: item for item in corpus}
    for instance in orthanc.get_json("/instances?expand"):
        item = by_uid[instance["MainDicomTags"]["SOPInstanceUID"]]
        assert orthanc.instance_file(instance["ID"]) == item.path.read_bytes()


def test_dcmtk_echoscu_reaches_orthanc(orthanc: OrthancServer) -> None:
    port = str(orthanc.dicom_port)
    result = run_dcmtk(ECHOSCU, "-aet", LISTENER_AET, "-aec", "ORTHANC", LOOPBACK, port)
    assert result.returncode == 0, result.stderr


def test_find_from_known_calling_aet_succeeds(
    orthanc: OrthancServer, corpus: Corpus
) -> None:
    assoc = associate(orthanc, LISTENER_AET)
    try:
        statuses = find_statuses(assoc)
    finally:
        assoc.release()
    assert statuses == [STATUS_PENDING] * len(corpus.studies()) + [STATUS_SUCCESS]


def test_find_from_unknown_calling_aet_is_aborted(orthanc: OrthancServer) -> None:
    # Orthanc 1.10.1 accepts the association, then answers the C-FIND with an
    # A-ABORT (source: DUL service-user) and no C-FIND-RSP at all.
    aborted = threading.Event()
    assoc = associate(orthanc, "STRANGER", aborted)
    try:
        statuses = find_statuses(assoc)
    finally:
        assoc.release()
    assert statuses == [None]
    assert aborted.wait(timeout=10)
    assert 'Rejected Find request from remote DICOM modality with AET "STRANGER"' in (
        orthanc.log_path.read_text()
    )


def test_dcmtk_findscu_from_unknown_calling_aet_is_aborted(
    orthanc: OrthancServer,
) -> None:
    port = str(orthanc.dicom_port)
    result = run_dcmtk(
        FINDSCU, "-S", "-aet", "STRANGER2", "-aec", "ORTHANC",
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID",
        LOOPBACK, port,
    )  # fmt: skip
    # NOTE: DCMTK 3.6.7's findscu exits 0 even so; only its log tells.
    assert "0006:0317 Peer aborted Association" in result.stderr


def test_move_to_unknown_destination_fails_with_c000(
    orthanc: OrthancServer, corpus: Corpus
) -> None:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = corpus.files[0].StudyInstanceUID
    assoc = associate(orthanc, LISTENER_AET)
    try:
        rsps = assoc.send_c_move(query, "NOWHERE", STUDY_ROOT_MOVE)
        statuses = [status.get("Status") for status, _identifier in rsps]
    finally:
        assoc.release()
    assert statuses == [STATUS_UNABLE_TO_PROCESS]
    assert "Unknown modality for AET: NOWHERE" in orthanc.log_path.read_text()


def test_dcmtk_movescu_to_unknown_destination_fails(
    orthanc: OrthancServer, corpus: Corpus
) -> None:
    result = run_dcmtk(
        MOVESCU, "-v", "-S", "-aet", LISTENER_AET, "-aec", "ORTHANC",
        "-aem", "NOWHERE",
        "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={corpus.files[0].StudyInstanceUID}",
        LOOPBACK, str(orthanc.dicom_port),
    )  # fmt: skip
    assert result.returncode != 0
    assert "Final Move Response (Failed: UnableToProcess)" in result.stderr


# -- OrthancServer options and REST helpers, on private servers -------------------


def test_allow_unknown_aet_lets_anyone_query(tmp_path: Path, corpus: Corpus) -> None:
    with OrthancServer(tmp_path, allow_unknown_aet=True) as server:
        server.upload(corpus.files[0].path)
        assoc = associate(server, "STRANGER")
        try:
            statuses = find_statuses(assoc)
        finally:
            assoc.release()
    assert statuses == [STATUS_PENDING, STATUS_SUCCESS]


def test_add_modality_at_runtime_and_clear(tmp_path: Path, corpus: Corpus) -> None:
    ae = AE(ae_title="LATECOMER")
    ae.add_supported_context(VERIFICATION)
    port = free_port()
    scp = ae.start_server((LOOPBACK, port), block=False)
    assert scp is not None
    try:
        with OrthancServer(tmp_path) as server:
            server.add_modality("LATE", "LATECOMER", port)
            assert "LATE" in server.get_json("/modalities")
            server.request("POST", "/modalities/LATE/echo", b"{}")
            server.upload(corpus.files[0].path)
            server.clear()
            assert server.instance_count() == 0
    finally:
        scp.shutdown()


def test_orthanc_startup_failure_is_reported(tmp_path: Path) -> None:
    with OrthancServer(tmp_path / "first") as first:
        taken = [(first.dicom_port, None), (None, first.http_port)]
        for dicom_port, http_port in taken:
            clash = OrthancServer(
                tmp_path / "second", dicom_port=dicom_port, http_port=http_port
            )
            with pytest.raises(OrthancError, match="exited with code"):
                clash.start()
