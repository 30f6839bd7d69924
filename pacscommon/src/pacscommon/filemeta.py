"""Encode a Part-10 File Meta Information group (PS3.10 7.1) in a few steps.

The receive path writes one for every instance. pynetdicom builds it as a
pydicom FileMetaDataset and writes it through pydicom's generic writer, which
costs a sizeable share of the listener's time per instance; the group is six
fixed elements, so this module writes the same bytes directly. A test checks
them against pydicom's.
"""

import struct
from typing import Any, NamedTuple

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION


class FileMetaFields(NamedTuple):
    """The values of the group that change from instance to instance."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    implementation_uid: str
    implementation_version: str


def _short(element: int, vr: bytes, value: bytes) -> bytes:
    """Encode a group 2 element with a 2-byte length (explicit VR LE)."""
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _uid(value: str) -> bytes:
    """Return a UI value padded to even length with a NUL."""
    raw = str(value).encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _text(value: str) -> bytes:
    """Return an SH value padded to even length with a space."""
    raw = str(value).encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def file_meta_bytes(fields: FileMetaFields) -> bytes:
    """Return the encoded group, its group length element first."""
    body = b"".join(
        (
            struct.pack("<HH2s2xI", 0x0002, 0x0001, b"OB", 2) + b"\x00\x01",
            _short(0x0002, b"UI", _uid(fields.sop_class_uid)),
            _short(0x0003, b"UI", _uid(fields.sop_instance_uid)),
            _short(0x0010, b"UI", _uid(fields.transfer_syntax)),
            _short(0x0012, b"UI", _uid(fields.implementation_uid)),
            _short(0x0013, b"SH", _text(fields.implementation_version)),
        )
    )
    return _short(0x0000, b"UL", struct.pack("<I", len(body))) + body


def create_fields(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    implementation_uid: str = PYNETDICOM_IMPLEMENTATION_UID,
    implementation_version: str = PYNETDICOM_IMPLEMENTATION_VERSION,
) -> FileMetaFields:
    """Stand in for pynetdicom's ``create_file_meta`` on the receive path."""
    return FileMetaFields(
        sop_class_uid,
        sop_instance_uid,
        transfer_syntax,
        implementation_uid,
        implementation_version,
    )


def write_fields(fp: Any, fields: Any, enforce_standard: bool = True) -> None:
    """Stand in for pydicom's ``write_file_meta_info`` on the receive path."""
    fp.write(file_meta_bytes(fields))
