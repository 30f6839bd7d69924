"""C-GET read and written in our own thread (pacscommon.retrievals).

Against the real Orthanc for the happy path, and against a pynetdicom Q/R SCP
run here for what Orthanc never does: data sets cut into many small PDUs, an
A-ABORT in the middle of a data set, a full disk, and every final status.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from copy import deepcopy
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynetdicom.ae
import pynetdicom.transport
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, _config, evt
from pynetdicom.dsutils import encode
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)
from test_pacsretrieve import error_lines, truth_rows, write_results
from test_pacsretrieve_modes import run_mode

from corpus import Corpus
from orthanc import OrthancServer, free_port
from pacscommon import commands as cmd
from pacscommon.arrivals import Receiver
from pacscommon.channel import Channel
from pacscommon.handlers import StorageHandlers
from pacscommon.network import associate, make_ae
from pacscommon.peers import Peer, Timeouts, release
from pacscommon.requestor import DirectAE, DirectAssociation
from pacscommon.retrievals import GetSession
from pacscommon.storage import StorageEngine
from pacsretrieve.contexts import get_contexts, get_roles
from pacsretrieve.main import main, parser
from pacsretrieve.move import GET_MODEL, retrieve_identifier
from pacsretrieve.query import open_find, sop_classes_of_series, sop_classes_of_study

Scenario = Callable[[Any, list[Dataset]], Iterator[Any]]
# PS3.8 9.3.1 and E.2
P_DATA_TF = 0x04
A_ABORT = bytes((0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0))


def data_set_bytes(part10: bytes) -> bytes:
    """Return the data set of a Part-10 file: what follows its file meta group."""
    assert part10[128:132] == b"DICM"
    # (0002,0000) UL, explicit VR little endian: tag, VR, 2-byte length, value
    (group_length,) = struct.unpack_from("<I", part10, 132 + 8)
    return part10[132 + 12 + group_length :]


def no_association_threads() -> bool:
    """Return whether every thread of our associations has ended."""
    names = ("DirectAssociation", "ParkingDUL")
    return not [t for t in threading.enumerate() if type(t).__name__ in names]


# Against the real Orthanc.


def wire_copies(
    orthanc: OrthancServer, StudyInstanceUIDs: set[str], classes: set[str]
) -> dict[str, bytes]:
    """C-GET the studies with pynetdicom's own SCU; return each data set's bytes
    as they came over the wire, by SOPInstanceUID."""
    copies: dict[str, bytes] = {}

    def keep(event: evt.Event) -> int:
        copies[str(event.request.AffectedSOPInstanceUID)] = (
            event.request.DataSet.getvalue()
        )
        return 0x0000

    ae = AE("CHRISLOCAL")
    assoc = ae.associate(
        "127.0.0.1",
        orthanc.dicom_port,
        contexts=get_contexts(classes),
        ext_neg=get_roles(classes),
        ae_title="ORTHANC",
        evt_handlers=[(evt.EVT_C_STORE, keep)],
    )
    assert assoc.is_established
    try:
        for uid in StudyInstanceUIDs:
            identifier = retrieve_identifier("STUDY", uid, None)
            *_, (final, _) = assoc.send_c_get(identifier, GET_MODEL)
            assert final.Status == 0x0000
    finally:
        assoc.release()
    return copies


def same_elements(ours: Dataset, theirs: Dataset) -> bool:
    """Return whether two data sets hold the same elements and values, the
    trailing padding aside."""
    padding = 0xFFFCFFFC
    tags = {e.tag for e in ours} | {e.tag for e in theirs}
    tags.discard(padding)
    return all(t in ours and t in theirs and ours[t].value == theirs[t].value
               for t in tags)  # fmt: skip


def test_every_instance_is_what_orthanc_sent_byte_for_byte(
    orthanc: OrthancServer,
    corpus: Corpus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Orthanc (DCMTK) re-encodes a data set as it sends it (sequence lengths,
    the VR of encapsulated pixel data, trailing padding dropped), so the bytes to
    match are those on the wire, taken here by pynetdicom's own C-GET SCU, and
    the values those of Orthanc's stored copy."""
    truth = orthanc.series_truth()
    code, out = run_mode(orthanc, tmp_path, "--mode", "get",
                         rows=truth_rows(truth))  # fmt: skip
    assert code == 0
    assert not (out / ".pacsretrieve-data").exists()
    assert no_association_threads()
    # pynetdicom's SCU keeps each data set in memory, as received.
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)
    studies = {t["StudyInstanceUID"] for t in truth.values()}
    classes = {
        str(dcmread(c.path, stop_before_pixels=True).SOPClassUID) for c in corpus
    }
    wire = wire_copies(orthanc, studies, classes)
    ids = {
        i["MainDicomTags"]["SOPInstanceUID"]: i["ID"]
        for i in orthanc.get_json("/instances?expand")
    }
    received = list(out.rglob("*.dcm"))
    assert len(received) == len(corpus) == len(ids) == len(wire)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom on sample files
        for path in received:
            ours = dcmread(path)
            sop = str(ours.SOPInstanceUID)
            assert data_set_bytes(path.read_bytes()) == wire[sop], path.name
            theirs = dcmread(BytesIO(orthanc.instance_file(ids[sop])))
            assert same_elements(ours, theirs), path.name
            assert ours.file_meta.TransferSyntaxUID == (
                theirs.file_meta.TransferSyntaxUID
            )
            assert ours.file_meta.MediaStorageSOPInstanceUID == sop


def test_parallel_gets_each_over_its_own_association(
    orthanc: OrthancServer, corpus: Corpus, tmp_path: Path
) -> None:
    code, out = run_mode(orthanc, tmp_path, "--mode", "get", "--parallel", "3",
                         rows=truth_rows(orthanc.series_truth()))  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert sum(s["arrived"] for s in report["series"]) == len(corpus)
    assert len(list(out.rglob("*.dcm"))) == len(corpus)
    assert no_association_threads()


def test_sop_classes_from_the_study_or_the_series(
    orthanc: OrthancServer, corpus: Corpus
) -> None:
    peer = Peer("127.0.0.1", orthanc.dicom_port, "ORTHANC", "CHRISLOCAL")
    assoc = open_find(peer, Timeouts())
    try:
        for files in corpus.series().values():
            first = files[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                expected = {
                    str(dcmread(f.path, stop_before_pixels=True).SOPClassUID)
                    for f in files
                }
            study, series = first.StudyInstanceUID, first.SeriesInstanceUID
            assert sop_classes_of_study(assoc, study, peer) == expected
            assert sop_classes_of_series(assoc, study, series, peer) == expected
            # Too many classes in the study: the IMAGE-level answer.
            assert sop_classes_of_series(assoc, study, series, peer, 0) == expected
    finally:
        release(assoc)


# Against a fake PACS.


class FakeGetPacs:
    """A pynetdicom Q/R SCP that answers C-GET the way ``scenario`` says."""

    def __init__(self, series: dict[str, list[Dataset]], get: bool = True) -> None:
        self.series = series
        self.scenario: Scenario = self.send_all
        self.port = free_port()
        self.gets = 0
        self.store_statuses: list[int] = []
        self.find_levels: list[str] = []
        ae = AE("FAKEPACS")
        ae.add_supported_context(Verification)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        if get:
            ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
        ae.add_supported_context(CTImageStorage, scu_role=True, scp_role=True)
        handlers = [
            (evt.EVT_C_GET, self.on_get),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_DIMSE_RECV, self.on_message),
        ]
        self.server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=handlers
        )

    def on_find(self, event: evt.Event) -> Iterator[Any]:
        """Answer the C-FINDs for SOP classes: IMAGE level only, as some do."""
        self.find_levels.append(str(event.identifier.QueryRetrieveLevel))
        if event.identifier.QueryRetrieveLevel == "STUDY":
            match = Dataset()
            match.QueryRetrieveLevel = "STUDY"
            match.StudyInstanceUID = event.identifier.StudyInstanceUID
            yield 0xFF00, match  # no SOPClassesInStudy
            return
        for ds in self.series[str(event.identifier.SeriesInstanceUID)]:
            match = Dataset()
            match.QueryRetrieveLevel = "IMAGE"
            match.SOPClassUID = ds.SOPClassUID
            yield 0xFF00, match

    def on_get(self, event: evt.Event) -> Iterator[Any]:
        """Play the scenario for the series the identifier names."""
        self.gets += 1
        yield from self.scenario(
            event, self.series[str(event.identifier.SeriesInstanceUID)]
        )

    def on_message(self, event: evt.Event) -> None:
        """Keep the status of every C-STORE-RSP we answered with."""
        command = event.message.command_set
        if command.CommandField == 0x8001:
            self.store_statuses.append(int(command.Status))

    def send_all(self, event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        """Send every instance: success."""
        yield len(datasets)
        for ds in datasets:
            yield 0xFF00, ds


@pytest.fixture(scope="module")
def ct_slices(corpus: Corpus) -> list[Dataset]:
    """The corpus's CT series of six slices, with fresh UIDs of their own."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        (files,) = [f for f in corpus.series().values() if len(f) == 6]
        slices = [dcmread(f.path) for f in files]
    study, series = generate_uid(), generate_uid()
    copies = []
    for ds in slices:
        copy = deepcopy(ds)
        copy.StudyInstanceUID, copy.SeriesInstanceUID = study, series
        copy.SOPInstanceUID = generate_uid()
        copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
        copies.append(copy)
    return copies


@pytest.fixture()
def fake(ct_slices: list[Dataset]) -> Iterator[FakeGetPacs]:
    """A fake PACS holding the CT series, stopped after the test."""
    pacs = FakeGetPacs({str(ct_slices[0].SeriesInstanceUID): ct_slices})
    yield pacs
    pacs.server.shutdown()


class Session:
    """A C-GET association with a fake PACS, its session and its engine."""

    def __init__(
        self, port: int, data_dir: Path, max_pdu: int = 0, reserve: int = 0
    ) -> None:
        self.engine = StorageEngine(data_dir, reserve_bytes=reserve)
        self.engine.prepare()
        ae = make_ae("CHRISLOCAL", Timeouts(dimse=5.0), DirectAE)
        classes = {str(CTImageStorage)}
        peer = Peer("127.0.0.1", port, "FAKEPACS", "CHRISLOCAL")
        self.assoc = associate(
            ae,
            peer,
            contexts=get_contexts(classes),
            ext_neg=get_roles(classes),
            max_pdu=max_pdu,
        )
        direct: DirectAssociation = self.assoc  # type: ignore[assignment]
        receiver = Receiver(StorageHandlers(self.engine), self.engine.incoming_folder())
        self.session = GetSession(direct, receiver, 5.0)

    def get(self, series: list[Dataset]) -> list[tuple[Dataset, Dataset | None]]:
        """C-GET a series; return every response."""
        ds = series[0]
        identifier = retrieve_identifier(
            "SERIES", str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
        )
        return list(self.session.send_c_get(identifier, GET_MODEL))

    def stored(self) -> dict[str, Path]:
        """Return the files in the series tree by SOPInstanceUID."""
        return {
            str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
            for p in self.engine.data_dir.rglob("*.dcm")
            if ".incoming" not in p.parts
        }


def encoded_as_sent(ds: Dataset, syntax: str) -> bytes:
    """Return a data set encoded as pynetdicom sends it in ``syntax``."""
    uid = UID(syntax)
    data = encode(ds, uid.is_implicit_VR, uid.is_little_endian, uid.is_deflated)
    assert data is not None
    return data


def test_data_sets_cut_into_many_pdus(
    fake: FakeGetPacs, ct_slices: list[Dataset], tmp_path: Path
) -> None:
    run = Session(fake.port, tmp_path / "data", max_pdu=1024)
    try:
        assert run.assoc.requestor.maximum_length == 1024
        responses = run.get(ct_slices)
    finally:
        release(run.assoc)
    final = responses[-1][0]
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 6
    assert [r[0].Status for r in responses[:-1]] == [0xFF00] * 6
    assert fake.store_statuses == [0x0000] * 6
    stored = run.stored()
    assert set(stored) == {str(ds.SOPInstanceUID) for ds in ct_slices}
    for ds in ct_slices:
        part10 = stored[str(ds.SOPInstanceUID)].read_bytes()
        syntax = str(
            dcmread(stored[str(ds.SOPInstanceUID)]).file_meta.TransferSyntaxUID
        )
        sent = encoded_as_sent(ds, syntax)
        assert len(sent) > 30 * 1024  # thirty PDUs and more per data set
        assert data_set_bytes(part10) == sent
    assert list((tmp_path / "data" / ".incoming").iterdir()) == []
    assert run.assoc.is_released and no_association_threads()


def test_full_disk_is_answered_out_of_resources(
    fake: FakeGetPacs, ct_slices: list[Dataset], tmp_path: Path
) -> None:
    run = Session(fake.port, tmp_path / "data", reserve=1 << 60)
    try:
        responses = run.get(ct_slices)
    finally:
        release(run.assoc)
    assert fake.store_statuses == [0xA700] * 6
    final = responses[-1][0]
    assert final.NumberOfFailedSuboperations == 6
    assert run.stored() == {}
    assert list((tmp_path / "data" / ".incoming").iterdir()) == []


class ReverseAbortingRelay:
    """Relay one association; A-ABORT both sides in the middle of a data set.

    The PACS's PDUs are read whole; after ``abort_after`` data-set fragments
    have gone through to the client, the next one that is not the last of its
    data set is replaced by an A-ABORT to both sides.
    """

    def __init__(self, target_port: int, abort_after: int) -> None:
        self.abort_after = abort_after
        self.target_port = target_port
        self.aborted = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def _serve(self) -> None:
        client, _ = self.server.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        forward = threading.Thread(target=_copy, args=(client, upstream), daemon=True)
        forward.start()
        self.threads.append(forward)
        try:
            self._pdus(upstream, client)
        finally:
            for sock in (client, upstream):
                sock.close()

    def _pdus(self, source: socket.socket, sink: socket.socket) -> None:
        fragments = 0
        while True:
            header = _exactly(source, 6)
            if header is None:
                return
            body = _exactly(source, struct.unpack(">I", header[2:])[0]) or b""
            control = body[5] if header[0] == P_DATA_TF else 0x03
            if not control & 0x01:  # a data set fragment
                if fragments >= self.abort_after and not control & 0x02:
                    sink.sendall(A_ABORT)
                    source.sendall(A_ABORT)
                    self.aborted.set()
                    return
                fragments += 1
            sink.sendall(header + body)

    def close(self) -> None:
        """Stop accepting; wait for the relay's threads."""
        self.server.close()
        for thread in self.threads:
            thread.join(5)


def _copy(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes one way until either side closes."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass


def _exactly(sock: socket.socket, count: int) -> bytes | None:
    """Read ``count`` bytes; None if the connection ends first."""
    data = b""
    while len(data) < count:
        try:
            piece = sock.recv(count - len(data))
        except OSError:
            return None
        if not piece:
            return None
        data += piece
    return data


def test_abort_mid_instance_leaves_nothing_half_written(
    fake: FakeGetPacs,
    ct_slices: list[Dataset],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: pynetdicom skips close() when shutdown() fails, as it does on the
    # fake PACS's side of the aborted connection; its sockets get the fix ours
    # have (pacscommon.network).
    monkeypatch.setattr(
        pynetdicom.transport, "AssociationSocket", pynetdicom.ae.AssociationSocket
    )
    # 1 KB PDUs: about 39 fragments a slice; the abort comes inside the third.
    relay = ReverseAbortingRelay(fake.port, abort_after=100)
    try:
        run = Session(relay.port, tmp_path / "data", max_pdu=1024)
        responses = run.get(ct_slices)
    finally:
        relay.close()
    assert relay.aborted.is_set()
    status, identifier = responses[-1]
    assert "Status" not in status and identifier is None  # as pynetdicom says it
    assert len(run.stored()) == 2
    for path in run.stored().values():
        dcmread(path).pixel_array  # noqa: B018 - whole, or this raises
    assert list((tmp_path / "data" / ".incoming").iterdir()) == []
    assert run.assoc.is_aborted and not run.assoc.is_established
    wait = time.monotonic() + 5
    while not no_association_threads() and time.monotonic() < wait:
        time.sleep(0.05)
    assert no_association_threads()


# Through pacsretrieve's main.


def pull(fake: FakeGetPacs, tmp: Path, *args: str) -> tuple[int, dict[str, Any] | None]:
    """Pull from the fake PACS with --mode get; return (code, report)."""
    inputdir, outputdir = tmp / "in", tmp / "out"
    inputdir.mkdir(exist_ok=True)
    rows = [
        {"StudyInstanceUID": str(ds[0].StudyInstanceUID), "SeriesInstanceUID": uid,
         "NumberOfSeriesRelatedInstances": str(len(ds))}
        for uid, ds in fake.series.items()
    ]  # fmt: skip
    write_results(inputdir, rows)
    options = parser.parse_args(
        ["--pacs-port", str(fake.port), "--called-aet", "FAKEPACS", "--mode", "get",
         "--wait-timeout", "5", "--retry-delay", "0.05", *args]
    )  # fmt: skip
    code = main(options, inputdir, outputdir)
    report = outputdir / "report.json"
    return code, json.loads(report.read_text()) if report.exists() else None


def test_main_success(fake: FakeGetPacs, tmp_path: Path) -> None:
    code, report = pull(fake, tmp_path)
    assert code == 0 and report is not None
    (series,) = report["series"]
    assert series["complete"] is True and series["arrived"] == 6
    assert series["pacs"]["status"] == "0x0000"
    assert series["pacs"]["completed"] == 6
    # No SOPClassesInStudy from this PACS: the series' own classes are asked.
    assert fake.find_levels == ["STUDY", "IMAGE"]
    assert no_association_threads()


def test_a_pacs_without_c_get_is_one_error_line(
    ct_slices: list[Dataset], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pacs = FakeGetPacs({str(ct_slices[0].SeriesInstanceUID): ct_slices}, get=False)
    try:
        code, report = pull(pacs, tmp_path, "--retries", "0")
    finally:
        pacs.server.shutdown()
    assert code == 1 and report is not None
    assert report["series"][0]["arrived"] == 0
    lines = error_lines(capsys)
    assert len(lines) == 1 and "offers Study Root C-GET" in lines[0]
    assert no_association_threads()


def test_refused_instance_makes_a_partial_b000(
    fake: FakeGetPacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def one_refused(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        yield len(datasets)
        for ds in datasets[:-1]:
            yield 0xFF00, ds
        bad = deepcopy(datasets[-1])
        del bad.SeriesInstanceUID  # our engine refuses it (0xC000)
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
    assert fake.store_statuses == [0x0000] * 5 + [0xC000]
    assert series["arrived"] == 5 and series["complete"] is False
    assert len(error_lines(capsys)) == 1


@pytest.mark.parametrize(
    ("status", "words"),
    [(0xA701, "out of resources"), (0xA702, "out of resources"),
     (0xA900, "does not match"), (0xC000, "failure status 0xC000")],
)  # fmt: skip
def test_final_failure_statuses(
    fake: FakeGetPacs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    status: int,
    words: str,
) -> None:
    def two_then_failure(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        yield len(datasets)
        for ds in datasets[:2]:
            yield 0xFF00, ds
        yield status, None

    fake.scenario = two_then_failure
    code, report = pull(fake, tmp_path)
    assert code == 1 and report is not None
    (series,) = report["series"]
    assert series["pacs"]["status"] == f"0x{status:04X}"
    assert series["pacs"]["completed"] == 2 and series["arrived"] == 2
    assert series["attempts"] == 1  # a failure status is not retried
    lines = error_lines(capsys)
    assert len(lines) == 1 and words in lines[0]


def test_cancelled_get_keeps_what_came(fake: FakeGetPacs, tmp_path: Path) -> None:
    def cancel(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        yield len(datasets)
        for ds in datasets[:3]:
            yield 0xFF00, ds
        yield 0xFE00, None

    fake.scenario = cancel
    code, report = pull(fake, tmp_path)
    assert code == 1 and report is not None
    (series,) = report["series"]
    assert series["pacs"]["status"] == "0xFE00"
    assert series["arrived"] == 3 and series["complete"] is False


def test_abort_is_retried_then_reported(
    fake: FakeGetPacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def abort(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        event.assoc.abort()
        yield 0

    fake.scenario = abort
    code, report = pull(fake, tmp_path, "--retries", "2")
    assert code == 1 and report is not None
    assert fake.gets == 3 and report["series"][0]["attempts"] == 3
    lines = error_lines(capsys)
    assert len(lines) == 1 and "sent no status" in lines[0]
    assert no_association_threads()


def test_dimse_timeout_on_a_long_gap(
    fake: FakeGetPacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def slow(event: Any, datasets: list[Dataset]) -> Iterator[Any]:
        yield len(datasets)
        yield 0xFF00, datasets[0]
        time.sleep(3.0)  # the slow PACS under test
        for ds in datasets[1:]:
            yield 0xFF00, ds

    fake.scenario = slow
    started = time.monotonic()
    code, report = pull(fake, tmp_path, "--dimse-timeout", "0.5", "--retries", "0")
    assert time.monotonic() - started < 2.5  # not the 3 s the PACS took
    assert code == 1 and report is not None
    assert report["series"][0]["arrived"] == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "--dimse-timeout" in lines[0]


# Against a peer that writes PDUs by hand.


class StubAssociation:
    """What a GetSession asks of an association, over a socket of the test's."""

    def __init__(self, channel: Channel, contexts: list[PresentationContext]) -> None:
        self._channel = channel
        self.accepted_contexts = contexts
        self.requestor = SimpleNamespace(
            ae_title="CHRISLOCAL",
            implementation_class_uid="1.2.826.0.1.3680043.9.3811.3.0.4",
            implementation_version_name="TEST",
        )

    def channel(self) -> Channel:
        """Return the channel, as a DirectAssociation does."""
        return self._channel


def command_set(**values: Any) -> bytes:
    """Return a command set (PS3.7 6.3.1), its group length first."""
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    body = encode(ds, True, True)
    assert body is not None
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def pdv(context_id: int, control: int, data: bytes) -> bytes:
    """Return one PDV item."""
    return struct.pack(">IBB", len(data) + 2, context_id, control) + data


def pdu(*pdvs: bytes) -> bytes:
    """Return a P-DATA-TF PDU of the given PDVs."""
    body = b"".join(pdvs)
    return struct.pack(">BxI", P_DATA_TF, len(body)) + body


def read_command(sock: socket.socket) -> dict[int, bytes]:
    """Read one PDU holding one whole command set; return its elements."""
    header = _exactly(sock, 6)
    assert header is not None
    body = _exactly(sock, struct.unpack(">I", header[2:])[0])
    assert body is not None and header[0] == P_DATA_TF
    (_, control, fragment), *rest = cmd.split_pdvs(body)
    assert control == 0x03 and rest == []
    return cmd.decode_command(fragment)


def test_messages_cut_and_packed_any_way_the_standard_allows(
    ct_slices: list[Dataset], tmp_path: Path
) -> None:
    """Command sets cut into PDVs of a few bytes, data sets into 7-byte
    fragments over many PDUs, a data set's end, the pending C-GET-RSP and the
    next C-STORE-RQ in one PDU, an identifier in two PDVs."""
    get_cx = build_context(GET_MODEL, ImplicitVRLittleEndian)
    ct_cx = build_context(CTImageStorage, ExplicitVRLittleEndian)
    get_cx.context_id, ct_cx.context_id = 1, 3
    ours, theirs = socket.socketpair()
    ended: list[str] = []
    channel = Channel(ours, peer_max_pdu=0, own_max_pdu=0, on_end=ended.append)
    engine = StorageEngine(tmp_path / "data")
    engine.prepare()
    receiver = Receiver(StorageHandlers(engine), engine.incoming_folder())
    session = GetSession(StubAssociation(channel, [get_cx, ct_cx]), receiver, 5.0)
    slices = ct_slices[:2]
    sent = [encoded_as_sent(ds, ExplicitVRLittleEndian) for ds in slices]
    failed_uid = "1.2.3.4.5"
    peer_saw: list[dict[int, bytes]] = []

    def store_rq(n: int) -> bytes:
        command = command_set(
            AffectedSOPClassUID=CTImageStorage, CommandField=0x0001,
            MessageID=100 + n, Priority=0, CommandDataSetType=0x0000,
            AffectedSOPInstanceUID=slices[n].SOPInstanceUID,
        )  # fmt: skip
        # The command set in PDVs of 5 bytes, in one PDU.
        cut = [command[i : i + 5] for i in range(0, len(command), 5)]
        return b"".join(pdv(3, 0x01 | (0x02 if i == len(cut) - 1 else 0), c)
                        for i, c in enumerate(cut))  # fmt: skip

    def data_pdus(n: int) -> tuple[bytes, bytes]:
        """Return PDUs of all but the last fragment, and the last fragment."""
        data = sent[n]
        cut = [data[i : i + 7] for i in range(0, len(data), 7)]
        body = cut[:-1]
        pdus = b"".join(pdu(*(pdv(3, 0x00, c) for c in body[i : i + 50]))
                        for i in range(0, len(body), 50))  # fmt: skip
        return pdus, pdv(3, 0x02, cut[-1])

    def pending(remaining: int, done: int) -> bytes:
        return pdv(1, 0x03, command_set(
            AffectedSOPClassUID=GET_MODEL, CommandField=0x8010,
            MessageIDBeingRespondedTo=1, CommandDataSetType=0x0101, Status=0xFF00,
            NumberOfRemainingSuboperations=remaining,
            NumberOfCompletedSuboperations=done, NumberOfFailedSuboperations=0,
            NumberOfWarningSuboperations=0,
        ))  # fmt: skip

    def play() -> None:
        peer_saw.append(read_command(theirs))  # the C-GET-RQ's command
        header = _exactly(theirs, 6)  # and its identifier
        assert header is not None
        _exactly(theirs, struct.unpack(">I", header[2:])[0])
        first, last = data_pdus(0)
        theirs.sendall(pdu(store_rq(0)) + first)
        second, second_last = data_pdus(1)
        theirs.sendall(pdu(last, pending(2, 0), store_rq(1)) + second)
        peer_saw.append(read_command(theirs))  # C-STORE-RSP 1
        theirs.sendall(pdu(second_last))
        peer_saw.append(read_command(theirs))  # C-STORE-RSP 2
        identifier = Dataset()
        identifier.FailedSOPInstanceUIDList = failed_uid
        raw = encode(identifier, True, True) or b""
        # The final response's remaining count present and empty, as allowed.
        final = command_set(
            AffectedSOPClassUID=GET_MODEL, CommandField=0x8010,
            MessageIDBeingRespondedTo=1, CommandDataSetType=0x0000, Status=0xB000,
            NumberOfRemainingSuboperations=None, NumberOfCompletedSuboperations=2,
            NumberOfFailedSuboperations=1, NumberOfWarningSuboperations=0,
        )  # fmt: skip
        theirs.sendall(pdu(pending(1, 1), pdv(1, 0x03, final), pdv(1, 0x00, raw[:9]))
                       + pdu(pdv(1, 0x02, raw[9:])))  # fmt: skip

    peer = threading.Thread(target=play, daemon=True)
    peer.start()
    try:
        ds = slices[0]
        identifier = retrieve_identifier(
            "SERIES", str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
        )
        responses = list(session.send_c_get(identifier, GET_MODEL))
        peer.join(5)
        # The channel's record of the socket's timeout is the socket's own.
        assert ours.gettimeout() == channel.sock_timeout
    finally:
        ours.close()
        theirs.close()
    assert [int(s.Status) for s, _ in responses] == [0xFF00, 0xFF00, 0xB000]
    assert [int(s.NumberOfCompletedSuboperations) for s, _ in responses] == [0, 1, 2]
    assert "NumberOfRemainingSuboperations" not in responses[-1][0]
    assert responses[-1][1] is not None
    assert responses[-1][1].FailedSOPInstanceUIDList == failed_uid
    assert cmd.command_us(peer_saw[0], cmd.CommandField) == 0x0010
    for n, rsp in enumerate(peer_saw[1:]):
        assert cmd.command_us(rsp, cmd.CommandField) == 0x8001
        assert cmd.command_us(rsp, cmd.MessageIDBeingRespondedTo) == 100 + n
        assert cmd.command_us(rsp, cmd.Status) == 0x0000
    stored = {
        str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
        for p in (tmp_path / "data").rglob("*.dcm")
        if ".incoming" not in p.parts
    }
    for ds, data in zip(slices, sent, strict=True):
        assert data_set_bytes(stored[str(ds.SOPInstanceUID)].read_bytes()) == data
    assert list((tmp_path / "data" / ".incoming").iterdir()) == []
    assert ended == []  # the association is still up for the next request
