"""The few PDUs and DIMSE command sets our own message loops read and write.

PS3.8 9.3 defines the PDUs (a 6-byte header: type, reserved, big-endian
length), PS3.7 6.3.1 the command set: group 0000 elements, always in Implicit
VR Little Endian, with the group length first. A storage SCP and a C-FIND SCU
need only a handful of them, so they are encoded and decoded here by hand
instead of through general datasets, which cost more than the bytes they
describe.
"""

import struct

# PS3.8 9.3.1: PDU types
PDU_ASSOCIATE_RQ = 0x01
PDU_ASSOCIATE_AC = 0x02
PDU_ASSOCIATE_RJ = 0x03
PDU_P_DATA = 0x04
PDU_RELEASE_RQ = 0x05
PDU_RELEASE_RP = 0x06
PDU_ABORT = 0x07

# PS3.8 9.3.8: A-ABORT source and reason
ABORT_SOURCE_USER = 0x00
ABORT_SOURCE_PROVIDER = 0x02
ABORT_REASON_NOT_SPECIFIED = 0x00
ABORT_REASON_UNRECOGNIZED_PDU = 0x01
ABORT_REASON_UNEXPECTED_PDU = 0x02
ABORT_REASON_INVALID_PARAMETER = 0x06

# PS3.8 E.2: message control header bits of a PDV
PDV_COMMAND = 0x01
PDV_LAST = 0x02

# PS3.5 10.1 and A.2: the Little Endian transfer syntaxes of small data sets
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

# PS3.7 E.1: command fields
C_STORE_RQ = 0x0001
C_FIND_RQ = 0x0020
C_MOVE_RQ = 0x0021
C_ECHO_RQ = 0x0030
C_CANCEL_RQ = 0x0FFF
RESPONSE_BIT = 0x8000

# PS3.7 E.1: CommandDataSetType 0x0101 means no data set follows.
NO_DATA_SET = 0x0101
# PS3.7 E.1: any other value means one does; this is the one we send.
DATA_SET = 0x0000

# PS3.7 E.1: Priority
PRIORITY_MEDIUM = 0x0000
PRIORITY_HIGH = 0x0001
PRIORITY_LOW = 0x0002

# PS3.7 C: status for a command this SCP does not provide
UNRECOGNIZED_OPERATION = 0x0211

# Command set elements (group 0000)
AffectedSOPClassUID = 0x0002
CommandField = 0x0100
MessageID = 0x0110
MessageIDBeingRespondedTo = 0x0120
MoveDestination = 0x0600
Priority = 0x0700
CommandDataSetType = 0x0800
Status = 0x0900
ErrorComment = 0x0902
AffectedSOPInstanceUID = 0x1000
# PS3.7 E.1: the sub-operation counts of C-MOVE and C-GET responses
NumberOfRemainingSuboperations = 0x1020
NumberOfCompletedSuboperations = 0x1021
NumberOfFailedSuboperations = 0x1022
NumberOfWarningSuboperations = 0x1023

_ELEMENT = struct.Struct("<HHI")
_US = struct.Struct("<H")
_PDU_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")


class ProtocolError(Exception):
    """The peer sent something the standard does not allow."""


def decode_command(raw: bytes) -> dict[int, bytes]:
    """Return the values of a command set by element number."""
    values: dict[int, bytes] = {}
    offset = 0
    end = len(raw)
    while offset < end:
        if offset + 8 > end:
            raise ProtocolError("command set ends inside an element header")
        group, element, length = _ELEMENT.unpack_from(raw, offset)
        offset += 8
        if group != 0x0000 or offset + length > end:
            raise ProtocolError(
                f"command set has a bad element ({group:04X},{element:04X})"
            )
        values[element] = raw[offset : offset + length]
        offset += length
    return values


def command_us(command: dict[int, bytes], element: int) -> int:
    """Return a US value of a command set, or raise if it is absent."""
    raw = command.get(element)
    if raw is None or len(raw) != 2:
        raise ProtocolError(f"command set lacks (0000,{element:04X})")
    return int(_US.unpack(raw)[0])


def command_uid(command: dict[int, bytes], element: int) -> str:
    """Return a UI value of a command set as text ("" when absent)."""
    raw = command.get(element, b"")
    return raw.decode("ascii", "replace").rstrip("\x00 ")


def command_text(command: dict[int, bytes], element: int) -> str:
    """Return a LO value of a command set as text ("" when absent)."""
    raw = command.get(element, b"")
    return raw.decode("ascii", "replace").strip("\x00 ")


def _uid_bytes(uid: str) -> bytes:
    """Return a UID padded to even length with a NUL."""
    raw = uid.encode("ascii", "replace")
    return raw + b"\x00" if len(raw) % 2 else raw


def encode_response(
    command_field: int,
    message_id: int,
    status: int,
    sop_class_uid: str,
    sop_instance_uid: str = "",
) -> bytes:
    """Return the command set of a response without a data set."""
    elements = [(AffectedSOPClassUID, _uid_bytes(sop_class_uid))]
    elements += [
        (CommandField, _US.pack(command_field | RESPONSE_BIT)),
        (MessageIDBeingRespondedTo, _US.pack(message_id)),
        (CommandDataSetType, _US.pack(NO_DATA_SET)),
        (Status, _US.pack(status)),
    ]
    if sop_instance_uid:
        elements.append((AffectedSOPInstanceUID, _uid_bytes(sop_instance_uid)))
    return _command_set(elements)


def encode_request(
    command_field: int,
    message_id: int,
    sop_class_uid: str,
    priority: int | None,
    move_destination: str = "",
    with_data: bool = True,
) -> bytes:
    """Return the command set of a request, followed by a data set or not.

    ``move_destination`` is the AE title a C-MOVE-RQ names (PS3.7 9.3.4.1);
    ``priority`` is None for a request without one (C-ECHO-RQ, PS3.7 9.3.5.1).
    """
    elements = [
        (AffectedSOPClassUID, _uid_bytes(sop_class_uid)),
        (CommandField, _US.pack(command_field)),
        (MessageID, _US.pack(message_id)),
    ]
    if move_destination:
        elements.append((MoveDestination, _ae_bytes(move_destination)))
    if priority is not None:
        elements.append((Priority, _US.pack(priority)))
    data_set_type = DATA_SET if with_data else NO_DATA_SET
    elements.append((CommandDataSetType, _US.pack(data_set_type)))
    return _command_set(elements)


def _ae_bytes(title: str) -> bytes:
    """Return an AE title padded to even length with a space."""
    raw = title.encode("ascii", "replace")
    return raw + b" " if len(raw) % 2 else raw


def _command_set(elements: list[tuple[int, bytes]]) -> bytes:
    """Return a command set of ``elements``, in order, after its group length."""
    body = b"".join(_ELEMENT.pack(0, el, len(v)) + v for el, v in elements)
    return _ELEMENT.pack(0, 0x0000, 4) + struct.pack("<I", len(body)) + body


def encode_command_pdus(context_id: int, command: bytes, max_pdu: int) -> bytes:
    """Return P-DATA-TF PDUs that carry ``command``, each within ``max_pdu``."""
    return _encode_pdus(context_id, command, max_pdu, PDV_COMMAND)


def encode_data_pdus(context_id: int, data: bytes, max_pdu: int) -> bytes:
    """Return P-DATA-TF PDUs that carry a data set, each within ``max_pdu``."""
    return _encode_pdus(context_id, data, max_pdu, 0)


def _encode_pdus(context_id: int, payload: bytes, max_pdu: int, kind: int) -> bytes:
    """Return P-DATA-TF PDUs of one PDV each, together carrying ``payload``."""
    # PS3.8 9.3.1: a maximum length of 0 means no limit; a PDU of the smallest
    # legal size must still carry one byte of a fragment.
    room = max(len(payload), 1) if max_pdu == 0 else max(max_pdu - 6, 1)
    pdus = []
    for start in range(0, max(len(payload), 1), room):
        fragment = payload[start : start + room]
        last = start + room >= len(payload)
        control = kind | (PDV_LAST if last else 0)
        pdv = _PDV_HEADER.pack(len(fragment) + 2, context_id, control) + fragment
        pdus.append(_PDU_HEADER.pack(PDU_P_DATA, len(pdv)) + pdv)
    return b"".join(pdus)


def encode_release_rq() -> bytes:
    """Return an A-RELEASE-RQ PDU."""
    return _PDU_HEADER.pack(PDU_RELEASE_RQ, 4) + b"\x00" * 4


def encode_release_rp() -> bytes:
    """Return an A-RELEASE-RP PDU."""
    return _PDU_HEADER.pack(PDU_RELEASE_RP, 4) + b"\x00" * 4


def encode_abort(reason: int, source: int = ABORT_SOURCE_PROVIDER) -> bytes:
    """Return an A-ABORT PDU."""
    return _PDU_HEADER.pack(PDU_ABORT, 4) + bytes((0, 0, source, reason))


def decode_pdu_header(raw: bytes) -> tuple[int, int]:
    """Return a PDU's type and length."""
    pdu_type, length = _PDU_HEADER.unpack(raw)
    return pdu_type, length


def split_pdvs(body: bytes) -> list[tuple[int, int, bytes]]:
    """Return the context ID, control header and fragment of each PDV of a PDU."""
    pdvs = []
    offset, end = 0, len(body)
    while offset < end:
        if offset + 6 > end:
            raise ProtocolError("P-DATA-TF ends inside a PDV header")
        size, context_id, control = decode_pdv_header(body[offset : offset + 6])
        offset += 6
        if offset + size > end:
            raise ProtocolError("PDV runs past the end of its PDU")
        pdvs.append((context_id, control, body[offset : offset + size]))
        offset += size
    return pdvs


def decode_pdv_header(raw: bytes) -> tuple[int, int, int]:
    """Return a PDV's data length, presentation context ID and control header."""
    item_length, context_id, control = _PDV_HEADER.unpack(raw)
    if item_length < 2:
        raise ProtocolError(f"PDV item of length {item_length}")
    return item_length - 2, context_id, control
