"""The associations pacsretrieve negotiates itself for C-ECHO and C-MOVE.

Against a peer that writes PDUs by hand (test_query_loop's scripted PACS, whose
A-ASSOCIATE-AC pynetdicom encodes): what goes on the wire, each way a
negotiation fails, and the C-ECHO. Against the real Orthanc and listener: a
pull by C-MOVE loads neither pynetdicom nor pydicom.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import pytest
import test_query_loop
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dsutils import decode
from pynetdicom.pdu import A_ASSOCIATE_RQ
from test_pacsretrieve import truth_rows, write_results
from test_query_loop import PduPeer, ScriptedPacs

from corpus import Corpus
from listener import Listener
from orthanc import LOOPBACK, OrthancServer, free_port
from pacscommon import commands as cmd
from pacscommon.errors import (
    AssociationAborted,
    AssociationRejected,
    PeerUnreachable,
    StatusError,
)
from pacscommon.moves import RetrieveKeys
from pacscommon.peers import Peer, Timeouts
from pacscommon.requested import IMPLEMENTATION_UID, request_association
from pacscommon.verification import VERIFICATION
from pacsretrieve.echo import echo
from pacsretrieve.move import MOVE_MODEL

QUICK = Timeouts(connect=5.0, acse=1.0, dimse=1.0, network=5.0)
CALLED, CALLING = "SCRIPTED", "CHRISLOCAL"
Start = Callable[..., ScriptedPacs]
# test_query_loop's fixture: a function that starts scripted PACSes, closed after.
pacs = test_query_loop.pacs


def peer_of(server: ScriptedPacs) -> Peer:
    return Peer(LOOPBACK, server.port, CALLED, CALLING)


def test_the_request_names_titles_contexts_and_limits(pacs: Start) -> None:
    seen: list[A_ASSOCIATE_RQ] = []

    def script(peer: PduPeer) -> None:
        kind, body = peer.read_pdu()
        rq = A_ASSOCIATE_RQ()
        rq.decode(struct.pack(">BxI", kind, len(body)) + body)
        seen.append(rq)
        peer.sock.sendall(cmd.encode_abort(0, source=0))

    server = pacs(script)
    with pytest.raises(AssociationAborted):
        request_association(peer_of(server), QUICK, [VERIFICATION, MOVE_MODEL])
    server.finish()
    request = seen[0].to_primitive()
    assert request.called_ae_title == CALLED and request.calling_ae_title == CALLING
    assert request.application_context_name == "1.2.840.10008.3.1.1.1"
    contexts = request.presentation_context_definition_list
    assert [(c.context_id, c.abstract_syntax) for c in contexts] == [
        (1, VERIFICATION),
        (3, MOVE_MODEL),
    ]
    for context in contexts:
        assert context.transfer_syntax == [
            ImplicitVRLittleEndian,
            ExplicitVRLittleEndian,
        ]
    assert request.maximum_length_received == 16382
    assert request.implementation_class_uid == IMPLEMENTATION_UID


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_a_move_goes_in_the_accepted_syntax_within_the_peers_limit(
    pacs: Start, syntax: UID
) -> None:
    got: list[tuple[dict[int, bytes], bytes, list[int]]] = []

    def script(peer: PduPeer) -> None:
        peer.accept(max_pdu=64)
        parts: dict[bool, list[bytes]] = {True: [], False: []}
        sizes = []
        done = False
        while not done:
            pdu_type, body = peer.read_pdu()
            assert pdu_type == cmd.PDU_P_DATA
            sizes.append(len(body))  # PS3.8 D.1: the limit is of the PDU's body
            for _, control, fragment in cmd.split_pdvs(body):
                parts[bool(control & cmd.PDV_COMMAND)].append(fragment)
                done = not control & cmd.PDV_COMMAND and bool(control & cmd.PDV_LAST)
        got.append(
            (cmd.decode_command(b"".join(parts[True])), b"".join(parts[False]), sizes)
        )
        assert peer.answer_release() == cmd.PDU_RELEASE_RQ

    server = pacs(script, syntax)
    assoc = request_association(peer_of(server), QUICK, [MOVE_MODEL])
    context = assoc.accepted_contexts[0]
    assert context.transfer_syntax == (syntax,)
    channel = assoc.channel()
    keys = RetrieveKeys("SERIES", "1.2.3", "1.2.3.45")
    request = cmd.encode_request(
        cmd.C_MOVE_RQ, 1, MOVE_MODEL, cmd.PRIORITY_MEDIUM, move_destination="DEST"
    )
    channel.send(context.context_id, request, keys.encode(syntax), 1.0)
    assoc.release()
    server.finish()
    command, data, sizes = got[0]
    assert cmd.command_text(command, cmd.MoveDestination) == "DEST"
    assert max(sizes) <= 64
    ds = decode(BytesIO(data), syntax.is_implicit_VR, True)
    assert ds.QueryRetrieveLevel == "SERIES"
    assert ds.StudyInstanceUID == "1.2.3" and ds.SeriesInstanceUID == "1.2.3.45"
    assert not assoc.is_established


def test_a_study_identifier_has_no_series_key() -> None:
    raw = RetrieveKeys("STUDY", "1.2.3.4").encode(ImplicitVRLittleEndian)
    ds = decode(BytesIO(raw), True, True)
    assert [e.keyword for e in ds] == ["QueryRetrieveLevel", "StudyInstanceUID"]
    assert ds.QueryRetrieveLevel == "STUDY" and len(raw) % 2 == 0


def _reject(result: int, source: int, reason: int) -> Callable[[PduPeer], None]:
    def script(peer: PduPeer) -> None:
        peer.read_pdu()
        body = bytes((0, result, source, reason))
        peer.sock.sendall(struct.pack(">BxI", cmd.PDU_ASSOCIATE_RJ, 4) + body)

    return script


def test_a_transient_rejection_says_so(pacs: Start) -> None:
    server = pacs(_reject(2, 1, 1))
    with pytest.raises(AssociationRejected, match="rejected .no reason given.") as e:
        request_association(peer_of(server), QUICK, [MOVE_MODEL])
    server.finish()
    assert getattr(e.value, "transient", None) is True


def test_a_permanent_rejection_names_the_calling_ae(pacs: Start) -> None:
    server = pacs(_reject(1, 1, 3))
    with pytest.raises(
        AssociationRejected, match="calling AE title not recognized.*CHRISLOCAL"
    ) as e:
        request_association(peer_of(server), QUICK, [MOVE_MODEL])
    server.finish()
    assert getattr(e.value, "transient", None) is False


def test_no_accepted_context_is_aborted(pacs: Start) -> None:
    after: list[int] = []

    def script(peer: PduPeer) -> None:
        peer.accept(accept_find=False)
        after.append(peer.read_pdu()[0])

    server = pacs(script)
    with pytest.raises(
        AssociationAborted, match="aborted or not answered while negotiating"
    ):
        request_association(peer_of(server), QUICK, [MOVE_MODEL])
    server.finish()
    assert after == [cmd.PDU_ABORT]


def test_a_malformed_answer_is_aborted(pacs: Start) -> None:
    after: list[int] = []

    def script(peer: PduPeer) -> None:
        peer.read_pdu()
        # The fixed fields, then an item that says it is longer than the PDU.
        body = bytes(68) + struct.pack(">BxH", 0x21, 200) + bytes(4)
        peer.sock.sendall(struct.pack(">BxI", cmd.PDU_ASSOCIATE_AC, len(body)) + body)
        after.append(peer.read_pdu()[0])

    server = pacs(script)
    with pytest.raises(AssociationAborted):
        request_association(peer_of(server), QUICK, [MOVE_MODEL])
    server.finish()
    assert after == [cmd.PDU_ABORT]


def test_a_silent_peer_is_given_up_after_the_acse_timeout(pacs: Start) -> None:
    def script(peer: PduPeer) -> None:
        peer.read_pdu()
        assert peer.closed()

    server = pacs(script)
    with pytest.raises(AssociationAborted, match="not answered while negotiating"):
        request_association(peer_of(server), QUICK, [MOVE_MODEL])
    server.finish()


def test_nothing_listening_is_unreachable() -> None:
    peer = Peer(LOOPBACK, free_port(), CALLED, CALLING)
    with pytest.raises(PeerUnreachable, match="nothing answered at that address"):
        request_association(peer, QUICK, [MOVE_MODEL])


def _echo_answer(status: int | None) -> Callable[[PduPeer], None]:
    def script(peer: PduPeer) -> None:
        peer.accept()
        pdu_type, body = peer.read_pdu()
        ((context_id, control, fragment),) = cmd.split_pdvs(body)
        command = cmd.decode_command(fragment)
        assert cmd.command_us(command, cmd.CommandField) == cmd.C_ECHO_RQ
        assert cmd.command_us(command, cmd.CommandDataSetType) == cmd.NO_DATA_SET
        assert cmd.Priority not in command
        if status is None:
            assert peer.read_pdu()[0] == cmd.PDU_ABORT
            assert peer.closed()
            return
        message_id = cmd.command_us(command, cmd.MessageID)
        rsp = cmd.encode_response(cmd.C_ECHO_RQ, message_id, status, VERIFICATION)
        peer.sock.sendall(peer.pdu([(True, rsp)]))
        assert peer.answer_release() == cmd.PDU_RELEASE_RQ

    return script


def test_echo_succeeds_and_releases(pacs: Start) -> None:
    server = pacs(_echo_answer(0x0000))
    echo(peer_of(server), QUICK)
    server.finish()


def test_echo_reports_a_failure_status(pacs: Start) -> None:
    server = pacs(_echo_answer(0x0110))
    with pytest.raises(StatusError, match="answered 0x0110"):
        echo(peer_of(server), QUICK)
    server.finish()


def test_echo_without_an_answer_says_to_check_the_port(pacs: Start) -> None:
    server = pacs(_echo_answer(None))
    with pytest.raises(AssociationAborted, match="no answer within --dimse-timeout"):
        echo(peer_of(server), QUICK)
    server.finish()


@pytest.fixture
def listener(tmp_path: Path, listener_port: int) -> Iterator[Listener]:
    """The listener Orthanc knows as CHRISLOCAL, on an empty data directory."""
    with Listener(tmp_path / "data", listener_port) as running:
        yield running


def test_a_pull_by_c_move_loads_neither_pynetdicom_nor_pydicom(
    orthanc: OrthancServer, corpus: Corpus, listener: Listener, tmp_path: Path
) -> None:
    # One series of each of two studies (a study with several chosen series
    # takes a C-FIND first, which pydicom encodes), of files in the syntaxes
    # the head scan reads (pydicom reads the others' SOPInstanceUID).
    plain = {ImplicitVRLittleEndian, ExplicitVRLittleEndian}
    studies = {
        files[0].StudyInstanceUID: uid
        for uid, files in corpus.series().items()
        if {f.TransferSyntaxUID for f in files} <= plain
    }
    chosen = set(list(studies.values())[:2])
    every = truth_rows(orthanc.series_truth())
    rows = [r for r in every if r["SeriesInstanceUID"] in chosen]
    assert len(rows) == 2
    inputdir, outputdir = tmp_path / "in", tmp_path / "out"
    inputdir.mkdir()
    write_results(inputdir, rows)
    program = (
        "import sys\n"
        "from pacsretrieve.main import cli\n"
        "sys.argv[0] = 'pacsretrieve'\n"
        "code = cli()\n"
        "names = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(names & {'pydicom', 'pynetdicom', 'numpy'}))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "--pacs-port", str(orthanc.dicom_port),
         "--data-location", str(listener.data_dir), "--wait-timeout", "10",
         str(inputdir), str(outputdir)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    report = json.loads((outputdir / "report.json").read_text())
    assert report["status"] == "success"
    expected = sum(int(r["NumberOfSeriesRelatedInstances"]) for r in rows)
    assert sum(s["arrived"] for s in report["series"]) == expected > 0
