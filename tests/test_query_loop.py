"""pacsquery's own C-FIND loop against a PACS that writes PDUs by hand.

Orthanc (and every pynetdicom or DCMTK SCP) answers in well-formed,
conventionally cut messages; the peer here answers as each test scripts it:
responses cut into one-byte PDVs, two messages in one PDU, an A-ABORT or a
closed connection mid-answer, silence, a cancel, a failure status, an
A-RELEASE-RQ left unanswered. Each test checks what the query returned or
raised, what the peer saw on the wire, and that pynetdicom's threads ended.
"""

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext
from rawpdu import read_pdu

from orthanc import LOOPBACK, OrthancServer, free_port
from pacscommon import commands as cmd
from pacscommon.errors import AssociationAborted, StatusError
from pacscommon.peers import Peer, Timeouts
from pacsquery.identifiers import Criterion, build_query
from pacsquery.query import QueryOutcome, run_queries

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PENDING = 0xFF00
SUCCESS = 0x0000
CANCEL = 0xFE00
UNABLE_TO_PROCESS = 0xC311
QUICK = Timeouts(connect=5.0, acse=1.0, dimse=1.0, network=5.0)


class PduPeer:
    """One accepted connection of the scripted PACS, spoken to PDU by PDU."""

    def __init__(self, sock: socket.socket, syntax: UID) -> None:
        self.sock = sock
        self.syntax = syntax
        self.context_id = 1
        self.requests: list[tuple[dict[int, bytes], Dataset]] = []

    def read_pdu(self) -> tuple[int, bytes]:
        """Read one PDU; return its type and body."""
        return read_pdu(self.sock, "the query")

    def accept(self, max_pdu: int = 16384, accept_find: bool = True) -> int:
        """Answer the A-ASSOCIATE-RQ; return the requestor's maximum PDU."""
        pdu_type, body = self.read_pdu()
        assert pdu_type == cmd.PDU_ASSOCIATE_RQ
        rq = A_ASSOCIATE_RQ()
        rq.decode(struct.pack(">BxI", pdu_type, len(body)) + body)
        request = rq.to_primitive()
        context = request.presentation_context_definition_list[0]
        self.context_id = int(context.context_id)
        self.sock.sendall(_associate_ac(request, self.syntax, max_pdu, accept_find))
        return int(request.maximum_length_received or 0)

    def read_request(self) -> Dataset:
        """Read a whole C-FIND-RQ; return its identifier."""
        parts: dict[bool, list[bytes]] = {True: [], False: []}
        done = {True: False, False: False}
        while not done[False]:
            pdu_type, body = self.read_pdu()
            assert pdu_type == cmd.PDU_P_DATA, f"PDU type {pdu_type:#04x}"
            for context_id, control, fragment in cmd.split_pdvs(body):
                assert context_id == self.context_id
                is_command = bool(control & cmd.PDV_COMMAND)
                parts[is_command].append(fragment)
                done[is_command] = bool(control & cmd.PDV_LAST)
        command = cmd.decode_command(b"".join(parts[True]))
        identifier = _decoded(b"".join(parts[False]), self.syntax)
        self.requests.append((command, identifier))
        return identifier

    @property
    def message_id(self) -> int:
        """Return the MessageID of the last request."""
        return cmd.command_us(self.requests[-1][0], cmd.MessageID)

    def response(
        self, status: int, identifier: Dataset | None = None, comment: str = ""
    ) -> tuple[bytes, bytes | None]:
        """Return a C-FIND-RSP to the last request: its command set and data set."""
        command = _find_rsp(self.message_id, status, identifier is not None, comment)
        data = None
        if identifier is not None:
            data = encode(
                identifier, self.syntax.is_implicit_VR, self.syntax.is_little_endian
            )
        return command, data

    def send(self, status: int, identifier: Dataset | None = None) -> None:
        """Send a C-FIND-RSP as two PDUs, as most peers do."""
        command, data = self.response(status, identifier)
        self.sock.sendall(self.pdu([(True, command)]))
        if data is not None:
            self.sock.sendall(self.pdu([(False, data)]))

    def pdu(self, pdvs: list[tuple[bool, bytes]], last: bool = True) -> bytes:
        """Return one P-DATA-TF PDU of (is_command, fragment) PDVs."""
        body = b""
        for is_command, fragment in pdvs:
            control = (cmd.PDV_COMMAND if is_command else 0) | (
                cmd.PDV_LAST if last else 0
            )
            body += struct.pack(">IBB", len(fragment) + 2, self.context_id, control)
            body += fragment
        return struct.pack(">BxI", cmd.PDU_P_DATA, len(body)) + body

    def send_abort(self) -> None:
        """Send an A-ABORT (service user, no reason)."""
        self.sock.sendall(cmd.encode_abort(0, source=0))

    def answer_release(self) -> int:
        """Read the next PDU; answer an A-RELEASE-RQ; return the PDU's type."""
        pdu_type, _ = self.read_pdu()
        if pdu_type == cmd.PDU_RELEASE_RQ:
            self.sock.sendall(cmd.encode_release_rp())
        return pdu_type

    def closed(self) -> bool:
        """Return True once the query has closed the connection."""
        self.sock.settimeout(5.0)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


Script = Callable[[PduPeer], None]


@dataclass
class ScriptedPacs:
    """A one-connection PACS on a free loopback port that follows a script."""

    script: Script
    syntax: UID = ExplicitVRLittleEndian
    port: int = field(default_factory=free_port)
    error: BaseException | None = None
    peer: PduPeer | None = None

    def __post_init__(self) -> None:
        self.server = socket.create_server((LOOPBACK, self.port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        conn.settimeout(10.0)
        self.peer = PduPeer(conn, self.syntax)
        try:
            self.script(self.peer)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            self.error = exc
        finally:
            conn.close()

    def finish(self) -> PduPeer:
        """Wait for the script to end; re-raise what went wrong in it."""
        self.thread.join(15.0)
        self.server.close()
        assert not self.thread.is_alive(), "the scripted PACS did not finish"
        if self.error is not None:
            raise self.error
        assert self.peer is not None
        return self.peer


@pytest.fixture
def pacs() -> Iterator[Callable[..., ScriptedPacs]]:
    """Return a function that starts a ScriptedPacs; each is closed afterwards."""
    started: list[ScriptedPacs] = []

    def start(script: Script, syntax: UID = ExplicitVRLittleEndian) -> ScriptedPacs:
        server = ScriptedPacs(script, syntax)
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.close()


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    """Fail a test that leaves a pynetdicom thread running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    left = [t for t in set(threading.enumerate()) - before if _pynetdicom(t)]
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = [t for t in left if t.is_alive()]
    assert not left, f"threads left running: {left}"


def _pynetdicom(thread: threading.Thread) -> bool:
    """Return whether a thread is one of pynetdicom's."""
    return type(thread).__module__.startswith(("pynetdicom", "pacscommon"))


def query(
    pacs: ScriptedPacs, timeouts: Timeouts = QUICK, **filters: str
) -> QueryOutcome:
    """Run pacsquery's queries (Study Root, series level) against ``pacs``."""
    criteria = [Criterion(kw, value, f"--{kw}") for kw, value in filters.items()]
    peer = Peer(LOOPBACK, pacs.port, "SCRIPTED", "CHRISLOCAL")
    return run_queries(peer, timeouts, [build_query(criteria)])


def study(n: int) -> Dataset:
    """Return the STUDY-level answer for study ``n``."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.7156.9.{n}"
    ds.PatientID = f"P{n}"
    ds.PatientName = "Müller^Jürgen"
    ds.StudyDate = "20240102"
    return ds


def series(StudyInstanceUID: str, n: int = 1) -> Dataset:
    """Return a SERIES-level answer within a study."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = StudyInstanceUID
    ds.SeriesInstanceUID = f"{StudyInstanceUID}.{n}"
    ds.SeriesNumber = n
    ds.Modality = "MR"
    ds.NumberOfSeriesRelatedInstances = 7
    return ds


def answer_walk(peer: PduPeer, studies: int = 1) -> None:
    """Answer a STUDY query with ``studies`` studies and each SERIES query with one."""
    peer.read_request()
    for n in range(studies):
        peer.send(PENDING, study(n))
    peer.send(SUCCESS)
    for _ in range(studies):
        request = peer.read_request()
        peer.send(PENDING, series(str(request.StudyInstanceUID)))
        peer.send(SUCCESS)


# -- well-formed but unusual -----------------------------------------------------


def test_answers_in_one_byte_pdvs_each_in_a_pdu_of_its_own(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        peer.read_request()
        command, data = peer.response(PENDING, study(0))
        assert data is not None
        for is_command, message in ((True, command), (False, data)):
            for n in range(len(message)):
                last = n == len(message) - 1
                peer.sock.sendall(peer.pdu([(is_command, message[n : n + 1])], last))
        peer.send(SUCCESS)
        request = peer.read_request()
        peer.send(PENDING, series(str(request.StudyInstanceUID)))
        peer.send(SUCCESS)
        assert peer.answer_release() == cmd.PDU_RELEASE_RQ

    server = pacs(script)
    outcome = query(server)
    server.finish()

    assert outcome.complete
    [row] = outcome.rows
    assert row["PatientName"] == "Müller^Jürgen"
    assert row["StudyInstanceUID"] == "1.2.826.0.1.3680043.9.7156.9.0"
    assert row["SeriesInstanceUID"] == "1.2.826.0.1.3680043.9.7156.9.0.1"
    assert row["NumberOfSeriesRelatedInstances"] == "7"


def test_many_pdvs_and_messages_in_one_pdu(pacs: Callable[..., ScriptedPacs]) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        peer.read_request()
        pdvs: list[tuple[bool, bytes]] = []
        for n in range(3):
            command, data = peer.response(PENDING, study(n))
            assert data is not None
            pdvs += [(True, command), (False, data)]
        pdvs.append((True, peer.response(SUCCESS)[0]))
        peer.sock.sendall(peer.pdu(pdvs))
        for _ in range(3):
            request = peer.read_request()
            peer.send(PENDING, series(str(request.StudyInstanceUID)))
            peer.send(SUCCESS)
        peer.answer_release()

    server = pacs(script, ImplicitVRLittleEndian)
    outcome = query(server)
    peer = server.finish()

    assert outcome.complete
    assert [row["PatientID"] for row in outcome.rows] == ["P0", "P1", "P2"]
    assert outcome.requests == 4
    # Each request has a message ID of its own.
    ids = [cmd.command_us(command, cmd.MessageID) for command, _ in peer.requests]
    assert ids == [1, 2, 3, 4]


def test_requests_fit_the_peers_maximum_pdu_length(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    lengths: list[int] = []

    def script(peer: PduPeer) -> None:
        own_max = peer.accept(max_pdu=64)
        assert own_max == 16382  # pynetdicom's default
        original = peer.read_pdu

        def measured() -> tuple[int, bytes]:
            pdu_type, body = original()
            lengths.append(len(body))
            return pdu_type, body

        peer.read_pdu = measured  # type: ignore[method-assign]
        peer.read_request()
        peer.send(SUCCESS)
        peer.answer_release()

    server = pacs(script)
    outcome = query(server)
    peer = server.finish()

    assert outcome.rows == []
    assert max(lengths) <= 64
    assert len(lengths) >= 5  # the command and the identifier took two each
    identifier = peer.requests[0][1]
    assert identifier.QueryRetrieveLevel == "STUDY"
    assert "PatientName" in identifier


# -- the answer cut short or refused ---------------------------------------------


def test_a_cancel_keeps_the_matches_and_marks_the_outcome_incomplete(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        peer.read_request()
        peer.send(PENDING, study(0))
        peer.send(PENDING, study(1))
        peer.send(CANCEL)
        for _ in range(2):
            request = peer.read_request()
            peer.send(PENDING, series(str(request.StudyInstanceUID)))
            peer.send(SUCCESS)
        peer.answer_release()

    server = pacs(script)
    outcome = query(server)
    server.finish()

    assert outcome.complete is False
    assert [row["PatientID"] for row in outcome.rows] == ["P0", "P1"]


def test_a_failure_status_is_raised_with_its_comment(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        peer.read_request()
        peer.send(PENDING, study(0))
        command, _ = peer.response(UNABLE_TO_PROCESS, comment="index locked")
        peer.sock.sendall(peer.pdu([(True, command)]))
        assert peer.answer_release() == cmd.PDU_RELEASE_RQ

    server = pacs(script)
    with pytest.raises(StatusError) as raised:
        query(server)
    server.finish()

    assert raised.value.status == UNABLE_TO_PROCESS
    message = str(raised.value)
    assert "0xC311 (unable to process): index locked" in message
    assert "STUDY-level C-FIND" in message


# -- the association ends mid-answer ------------------------------------------


def test_an_a_abort_mid_answer_is_a_dropped_association(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        peer.read_request()
        peer.send(PENDING, study(0))
        command, _ = peer.response(PENDING, study(1))
        peer.sock.sendall(peer.pdu([(True, command)]))  # its data set never comes
        peer.send_abort()
        assert peer.closed()

    server = pacs(script)
    with pytest.raises(AssociationAborted) as raised:
        query(server)
    server.finish()

    message = str(raised.value)
    assert message.startswith(
        "the PACS dropped the association during the STUDY-level C-FIND after 1 "
        "answers: is the calling AE CHRISLOCAL in its DicomModalities?"
    )


def test_a_connection_dropped_mid_pdu_is_a_dropped_association(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        peer.read_request()
        peer.send(PENDING, study(0))
        command, data = peer.response(PENDING, study(1))
        assert data is not None
        pdu = peer.pdu([(True, command), (False, data)])
        peer.sock.sendall(pdu[: len(pdu) // 2])  # then the connection closes

    server = pacs(script)
    started = time.monotonic()
    with pytest.raises(AssociationAborted) as raised:
        query(server)
    server.finish()

    assert time.monotonic() - started < 1.0  # not taken for a timeout
    assert str(raised.value).startswith(
        "the PACS dropped the association during the STUDY-level C-FIND after 1 answers"
    )


def test_a_silent_peer_is_a_timeout_and_is_aborted(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    seen: list[int] = []

    def script(peer: PduPeer) -> None:
        peer.accept()
        peer.read_request()
        peer.send(PENDING, study(0))
        seen.append(peer.read_pdu()[0])  # waits for what the query does next

    server = pacs(script)
    started = time.monotonic()
    with pytest.raises(AssociationAborted) as raised:
        query(server)
    waited = time.monotonic() - started
    server.finish()

    assert str(raised.value).startswith(
        "no answer from SCRIPTED at 127.0.0.1:"
    ) and "to the STUDY-level C-FIND within 1 s" in str(raised.value)
    assert 1.0 <= waited < 3.0
    assert seen == [cmd.PDU_ABORT]


# -- the end of the association --------------------------------------------------


def test_a_peer_that_never_answers_the_release_is_aborted(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    seen: list[int] = []

    def script(peer: PduPeer) -> None:
        peer.accept()
        answer_walk(peer)
        seen.append(peer.read_pdu()[0])  # the A-RELEASE-RQ, left unanswered
        seen.append(peer.read_pdu()[0])
        assert peer.closed()

    server = pacs(script)
    started = time.monotonic()
    outcome = query(server)
    waited = time.monotonic() - started
    server.finish()

    assert len(outcome.rows) == 1
    assert seen == [cmd.PDU_RELEASE_RQ, cmd.PDU_ABORT]
    assert 1.0 <= waited < 3.0


def test_a_release_ends_with_the_connection_closed(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        answer_walk(peer, studies=3)
        assert peer.answer_release() == cmd.PDU_RELEASE_RQ
        assert peer.closed()

    server = pacs(script)
    outcome = query(server)
    server.finish()

    assert len(outcome.rows) == 3


def test_a_peer_that_aborts_instead_of_releasing_gets_nothing_more(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        answer_walk(peer)
        assert peer.read_pdu()[0] == cmd.PDU_RELEASE_RQ
        peer.send_abort()
        assert peer.closed()  # no A-ABORT back, no A-RELEASE-RP expected

    server = pacs(script)
    outcome = query(server)
    server.finish()

    assert len(outcome.rows) == 1


def test_a_peer_that_releases_mid_answer_is_answered_and_dropped(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    def script(peer: PduPeer) -> None:
        peer.accept()
        peer.read_request()
        peer.send(PENDING, study(0))
        peer.sock.sendall(struct.pack(">BxI", cmd.PDU_RELEASE_RQ, 4) + bytes(4))
        assert peer.read_pdu()[0] == cmd.PDU_RELEASE_RP
        assert peer.closed()

    server = pacs(script)
    with pytest.raises(AssociationAborted) as raised:
        query(server)
    server.finish()

    assert "dropped the association during the STUDY-level C-FIND after 1" in str(
        raised.value
    )


def test_a_peer_that_accepts_no_context_is_refused_without_a_hang(
    pacs: Callable[..., ScriptedPacs],
) -> None:
    seen: list[int] = []

    def script(peer: PduPeer) -> None:
        peer.accept(accept_find=False)
        seen.append(peer.read_pdu()[0])

    server = pacs(script)
    with pytest.raises(AssociationAborted) as raised:
        query(server)
    server.finish()

    assert "aborted or not answered while negotiating" in str(raised.value)
    assert seen == [cmd.PDU_ABORT]


# -- against Orthanc ---------------------------------------------------------------


def test_a_walk_over_orthanc_finds_every_series_and_ends_cleanly(
    orthanc: OrthancServer,
) -> None:
    truth = orthanc.series_truth()
    studies = {series["StudyInstanceUID"] for series in truth.values()}
    peer = Peer(LOOPBACK, orthanc.dicom_port, orthanc.aet, "CHRISLOCAL")

    outcome = run_queries(peer, Timeouts(), [build_query([])])

    assert {row["SeriesInstanceUID"] for row in outcome.rows} == set(truth)
    assert outcome.requests == 1 + len(studies)
    for row in outcome.rows:
        series = truth[row["SeriesInstanceUID"]]
        assert row["StudyInstanceUID"] == series["StudyInstanceUID"]
        assert row["NumberOfSeriesRelatedInstances"] == str(
            series["NumberOfSeriesRelatedInstances"]
        )


def test_an_unknown_calling_ae_is_dropped_at_the_first_c_find(
    orthanc: OrthancServer,
) -> None:
    peer = Peer(LOOPBACK, orthanc.dicom_port, orthanc.aet, "NOBODY")

    with pytest.raises(AssociationAborted) as raised:
        run_queries(peer, Timeouts(), [build_query([])])

    assert str(raised.value).startswith(
        "the PACS dropped the association during the STUDY-level C-FIND: is the "
        "calling AE NOBODY in its DicomModalities?"
    )


# -- helpers ---------------------------------------------------------------------


def _associate_ac(
    request: A_ASSOCIATE, syntax: UID, max_pdu: int, accept_find: bool
) -> bytes:
    """Encode an A-ASSOCIATE-AC that accepts (or not) the first context."""
    proposed = request.presentation_context_definition_list[0]
    context = PresentationContext()
    context.context_id = proposed.context_id
    context.abstract_syntax = proposed.abstract_syntax
    context.transfer_syntax = [syntax]
    context.result = 0x00 if accept_find else 0x03  # 3: abstract syntax refused
    primitive = A_ASSOCIATE()
    primitive.application_context_name = request.application_context_name
    primitive.calling_ae_title = request.calling_ae_title
    primitive.called_ae_title = request.called_ae_title
    primitive.result = 0x00
    primitive.presentation_context_definition_results_list = [context]
    length = MaximumLengthNotification()
    length.maximum_length_received = max_pdu
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.7156.2"
    primitive.user_information = [length, implementation]
    pdu = A_ASSOCIATE_AC()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def _find_rsp(message_id: int, status: int, has_data: bool, comment: str) -> bytes:
    """Encode a C-FIND-RSP command set."""
    elements = [
        (cmd.AffectedSOPClassUID, _even(STUDY_FIND.encode(), b"\x00")),
        (cmd.CommandField, struct.pack("<H", 0x8020)),
        (cmd.MessageIDBeingRespondedTo, struct.pack("<H", message_id)),
        (cmd.CommandDataSetType, struct.pack("<H", 0x0000 if has_data else 0x0101)),
        (cmd.Status, struct.pack("<H", status)),
    ]
    if comment:
        elements.append((cmd.ErrorComment, _even(comment.encode(), b" ")))
    body = b"".join(struct.pack("<HHI", 0, el, len(v)) + v for el, v in elements)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def _even(raw: bytes, pad: bytes) -> bytes:
    return raw + pad if len(raw) % 2 else raw


def _decoded(data: bytes, syntax: UID) -> Dataset:
    return decode(BytesIO(data), syntax.is_implicit_VR, syntax.is_little_endian)
