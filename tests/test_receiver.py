"""The listener's receive loop against a peer that writes PDUs by hand.

DCMTK and pynetdicom send well-formed, conventionally cut messages; these
tests send what the standard allows but they never do (commands cut into many
PDVs, one-byte data fragments, a tiny maximum PDU length) and what it does not
allow, against the real pacslistener process.
"""

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.dsutils import encode
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context
from rawpdu import read_pdu

from listener import Listener
from orthanc import free_port
from pacscommon import commands as cmd

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
CONTEXTS = {1: CT_IMAGE, 3: VERIFICATION}
OPEN: list["RawPeer"] = []


@pytest.fixture(autouse=True)
def _close_peers() -> Iterator[None]:
    """Close every raw connection a test opened, whatever its outcome."""
    yield
    while OPEN:
        OPEN.pop().close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    """A fresh listener on a free port with an empty data directory."""
    with Listener(tmp_path / "data", free_port()) as running:
        yield running


class RawPeer:
    """A storage SCU that speaks PS3.8 by hand over one TCP connection."""

    def __init__(self, listener: Listener, max_pdu: int = 16384) -> None:
        self.sock = socket.create_connection(("127.0.0.1", listener.port), 10)
        OPEN.append(self)
        self.sock.sendall(_associate_rq(listener.aet, max_pdu))
        pdu_type, body = self.read_pdu()
        assert pdu_type == 0x02, f"association not accepted: PDU type {pdu_type}"

    def read_pdu(self) -> tuple[int, bytes]:
        """Read one PDU; return its type and its body."""
        return read_pdu(self.sock, "listener")

    def send_pdv(self, context_id: int, control: int, data: bytes) -> None:
        """Send one PDV in a P-DATA-TF PDU of its own."""
        pdv = struct.pack(">IBB", len(data) + 2, context_id, control) + data
        self.sock.sendall(struct.pack(">BxI", cmd.PDU_P_DATA, len(pdv)) + pdv)

    def response(self) -> tuple[dict[int, bytes], list[int]]:
        """Read a whole response command set; return it and each PDU's length."""
        parts, lengths = [], []
        while True:
            pdu_type, body = self.read_pdu()
            assert pdu_type == cmd.PDU_P_DATA, f"PDU type {pdu_type:#04x}"
            lengths.append(len(body))
            offset = 0
            while offset < len(body):
                size, _, control = cmd.decode_pdv_header(body[offset : offset + 6])
                parts.append(body[offset + 6 : offset + 6 + size])
                offset += 6 + size
                if control & cmd.PDV_LAST:
                    return cmd.decode_command(b"".join(parts)), lengths

    def release(self) -> int:
        """Send an A-RELEASE-RQ; return the type of the PDU that answers it."""
        self.sock.sendall(struct.pack(">BxI", cmd.PDU_RELEASE_RQ, 4) + b"\x00" * 4)
        return self.read_pdu()[0]

    def closed_by_peer(self) -> bool:
        """Return True once the listener has closed the connection."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def _associate_rq(called: str, max_pdu: int) -> bytes:
    """Encode an A-ASSOCIATE-RQ proposing CT storage and Verification."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "RAWPEER"
    primitive.called_ae_title = called
    contexts = []
    for context_id, abstract in CONTEXTS.items():
        cx = build_context(abstract, [ExplicitVRLittleEndian])
        cx.context_id = context_id
        contexts.append(cx)
    primitive.presentation_context_definition_list = contexts
    length = MaximumLengthNotification()
    length.maximum_length_received = max_pdu
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.7156.1"
    primitive.user_information = [length, implementation]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def _command(elements: list[tuple[int, bytes]]) -> bytes:
    """Encode a command set (Implicit VR LE, group length first)."""
    body = b"".join(struct.pack("<HHI", 0, el, len(v)) + v for el, v in elements)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def _uid(value: str) -> bytes:
    raw = value.encode()
    return raw + b"\x00" if len(raw) % 2 else raw


def store_rq(message_id: int, sop_instance: str) -> bytes:
    """Return a C-STORE-RQ command set for a CT image."""
    return _command(
        [
            (cmd.AffectedSOPClassUID, _uid(CT_IMAGE)),
            (cmd.CommandField, struct.pack("<H", cmd.C_STORE_RQ)),
            (cmd.MessageID, struct.pack("<H", message_id)),
            (0x0700, struct.pack("<H", 0)),
            (cmd.CommandDataSetType, struct.pack("<H", 0x0000)),
            (cmd.AffectedSOPInstanceUID, _uid(sop_instance)),
        ]
    )


def request(field: int, message_id: int, sop_class: str, data: bool) -> bytes:
    """Return a request command set of any kind."""
    return _command(
        [
            (cmd.AffectedSOPClassUID, _uid(sop_class)),
            (cmd.CommandField, struct.pack("<H", field)),
            (cmd.MessageID, struct.pack("<H", message_id)),
            (cmd.CommandDataSetType, struct.pack("<H", 0 if data else 0x0101)),
        ]
    )


def ct_data_set(corpus_file: Path) -> tuple[str, bytes]:
    """Return a CT file's SOPInstanceUID and its data set in Explicit VR LE."""
    ds = dcmread(corpus_file)
    data = encode(ds, is_implicit_vr=False, is_little_endian=True)
    assert data is not None
    return str(ds.SOPInstanceUID), data


@pytest.fixture
def ct(corpus) -> tuple[str, bytes]:  # type: ignore[no-untyped-def]
    """The corpus's uncompressed CT, re-encoded as Explicit VR LE."""
    path = next(c.path for c in corpus if c.path.name.endswith("CT_small.dcm"))
    return ct_data_set(path)


def stored_files(listener: Listener) -> list[Path]:
    """Return the instance files in the listener's series tree."""
    return [
        p
        for p in listener.data_dir.rglob("*.dcm")
        if ".incoming" not in p.parts and ".index" not in p.parts
    ]


def leftovers(listener: Listener) -> list[Path]:
    """Return what is left in the listener's .incoming folder."""
    return list((listener.data_dir / ".incoming").iterdir())


def status_of(response: dict[int, bytes]) -> int:
    return int(struct.unpack("<H", response[cmd.Status])[0])


def test_cut_commands_and_one_byte_fragments_store_the_same_bytes(
    listener: Listener, ct: tuple[str, bytes]
) -> None:
    uid, data = ct
    peer = RawPeer(listener)
    command = store_rq(7, uid)
    for start in range(0, len(command), 5):
        last = start + 5 >= len(command)
        control = cmd.PDV_COMMAND | (cmd.PDV_LAST if last else 0)
        peer.send_pdv(1, control, command[start : start + 5])
    head, tail = data[:300], data[300:]
    for index in range(len(head)):
        peer.send_pdv(1, 0x00, head[index : index + 1])
    peer.send_pdv(1, cmd.PDV_LAST, tail)
    response, _ = peer.response()
    assert status_of(response) == 0x0000
    assert struct.unpack("<H", response[cmd.MessageIDBeingRespondedTo]) == (7,)
    assert cmd.command_uid(response, cmd.AffectedSOPInstanceUID) == uid
    assert peer.release() == cmd.PDU_RELEASE_RP
    peer.close()
    [stored] = stored_files(listener)
    assert dcmread(stored).SOPInstanceUID == uid
    raw = stored.read_bytes()
    assert raw.endswith(data)
    assert dcmread(stored).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert leftovers(listener) == []


def test_responses_fit_the_peers_maximum_pdu_length(
    listener: Listener, ct: tuple[str, bytes]
) -> None:
    uid, data = ct
    peer = RawPeer(listener, max_pdu=40)
    peer.send_pdv(1, cmd.PDV_COMMAND | cmd.PDV_LAST, store_rq(1, uid))
    peer.send_pdv(1, cmd.PDV_LAST, data)
    response, lengths = peer.response()
    assert status_of(response) == 0x0000
    assert len(lengths) > 1
    assert max(lengths) <= 40
    peer.close()


def test_echo_and_an_unserved_command_keep_the_association(
    listener: Listener, ct: tuple[str, bytes]
) -> None:
    uid, data = ct
    peer = RawPeer(listener)
    peer.send_pdv(3, 0x03, request(cmd.C_ECHO_RQ, 1, VERIFICATION, data=False))
    response, _ = peer.response()
    assert status_of(response) == 0x0000
    assert struct.unpack("<H", response[cmd.CommandField]) == (0x8030,)
    # A C-FIND with its identifier: answered "unrecognized", identifier dropped.
    peer.send_pdv(1, 0x03, request(0x0020, 2, STUDY_FIND, data=True))
    peer.send_pdv(1, cmd.PDV_LAST, b"\x08\x00\x52\x00CS\x06\x00STUDY ")
    response, _ = peer.response()
    assert status_of(response) == cmd.UNRECOGNIZED_OPERATION
    assert struct.unpack("<H", response[cmd.CommandField]) == (0x8020,)
    peer.send_pdv(1, 0x03, store_rq(3, uid))
    peer.send_pdv(1, cmd.PDV_LAST, data)
    response, _ = peer.response()
    assert status_of(response) == 0x0000
    assert peer.release() == cmd.PDU_RELEASE_RP
    peer.close()
    assert len(stored_files(listener)) == 1


def _assert_aborted(peer: RawPeer, reason: int) -> None:
    pdu_type, body = peer.read_pdu()
    assert pdu_type == cmd.PDU_ABORT
    assert body[2:4] == bytes((cmd.ABORT_SOURCE_PROVIDER, reason))
    assert peer.closed_by_peer()


@pytest.mark.parametrize(
    ("send", "reason"),
    [
        # a PDV on a presentation context that was never proposed
        (lambda p, c: p.send_pdv(9, 0x03, c), cmd.ABORT_REASON_INVALID_PARAMETER),
        # a data set with no command before it
        (
            lambda p, c: p.send_pdv(1, 0x02, b"\x00" * 8),
            cmd.ABORT_REASON_INVALID_PARAMETER,
        ),
        # a command set whose element runs past its end
        (lambda p, c: p.send_pdv(1, 0x03, c[:-3]), cmd.ABORT_REASON_INVALID_PARAMETER),
        # a PDU type PS3.8 does not define
        (
            lambda p, c: p.sock.sendall(b"\x09\x00\x00\x00\x00\x02\x00\x00"),
            cmd.ABORT_REASON_UNRECOGNIZED_PDU,
        ),
        # an A-ASSOCIATE-RQ on an established association
        (
            lambda p, c: p.sock.sendall(b"\x01\x00\x00\x00\x00\x02\x00\x00"),
            cmd.ABORT_REASON_UNEXPECTED_PDU,
        ),
    ],
    ids=[
        "unknown-context",
        "data-without-command",
        "bad-command",
        "pdu-09",
        "second-rq",
    ],
)
def test_protocol_errors_abort_and_the_listener_serves_on(
    listener: Listener, ct: tuple[str, bytes], send: object, reason: int
) -> None:
    uid, data = ct
    peer = RawPeer(listener)
    send(peer, store_rq(1, uid))  # type: ignore[operator]
    _assert_aborted(peer, reason)
    peer.close()
    assert leftovers(listener) == []
    again = RawPeer(listener)
    again.send_pdv(1, 0x03, store_rq(2, uid))
    again.send_pdv(1, cmd.PDV_LAST, data)
    assert status_of(again.response()[0]) == 0x0000
    again.close()


def test_a_command_inside_a_data_set_aborts_and_drops_the_partial_file(
    listener: Listener, ct: tuple[str, bytes]
) -> None:
    uid, data = ct
    peer = RawPeer(listener)
    peer.send_pdv(1, 0x03, store_rq(1, uid))
    peer.send_pdv(1, 0x00, data[:1000])
    peer.send_pdv(1, 0x03, store_rq(2, uid))
    _assert_aborted(peer, cmd.ABORT_REASON_INVALID_PARAMETER)
    peer.close()
    assert stored_files(listener) == []
    assert leftovers(listener) == []


def test_a_peer_abort_or_drop_mid_instance_leaves_nothing(
    listener: Listener, ct: tuple[str, bytes]
) -> None:
    uid, data = ct
    for ending in (b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00", b""):
        peer = RawPeer(listener)
        peer.send_pdv(1, 0x03, store_rq(1, uid))
        peer.send_pdv(1, 0x00, data[:1000])
        if ending:
            peer.sock.sendall(ending)
        peer.close()
    # The listener logs one line per association once it has ended.
    for _ in range(100):
        text = listener.log.read_text()
        if text.count("association from RAWPEER") >= 2:
            break
        time.sleep(0.05)  # the listener ends the association in its own time
    assert text.count("association from RAWPEER") == 2
    assert "aborted" in text and "closed" in text
    assert stored_files(listener) == []
    assert leftovers(listener) == []
