"""Read the layout's attributes from the first bytes of a received data set.

The receive loop keeps the first kilobytes of every data set it streams to
disk. The attributes the layout needs all sit near the start (group 0008 to
0020, PS3.5 7.1: elements in ascending tag order), so walking those bytes is
enough, and costs a fraction of parsing the file again. The walk answers only
when it is sure to give the very text :func:`pacscommon.storage.read_layout_attributes`
would: little-endian transfer syntaxes, plain ASCII single values, the expected
VRs. Anything else (big endian, deflate, a non-ASCII or multi-valued value, a
value the VR does not allow, bytes that end too soon) returns ``None`` and the
caller parses the file with pydicom.
"""

import re
import struct
from dataclasses import dataclass

# PS3.5 A: the transfer syntaxes whose data sets are Implicit VR Little Endian.
_IMPLICIT = "1.2.840.10008.1.2"
# Deflated and big endian data sets are left to pydicom.
_NOT_SCANNED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2")

# (group << 16 | element) -> (keyword, VR), for the attributes the layout reads
_WANTED = {
    0x00080005: ("SpecificCharacterSet", "CS"),
    0x00080018: ("SOPInstanceUID", "UI"),
    0x00080020: ("StudyDate", "DA"),
    0x00080050: ("AccessionNumber", "SH"),
    0x00081030: ("StudyDescription", "LO"),
    0x0008103E: ("SeriesDescription", "LO"),
    0x00100010: ("PatientName", "PN"),
    0x00100020: ("PatientID", "LO"),
    0x00100030: ("PatientBirthDate", "DA"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
}
_LAST_WANTED = max(_WANTED)
# The attribute a reader of stored files most often wants alone.
SOP_INSTANCE_UID = 0x00080018

# PS3.5 7.1.2: explicit VRs with a 4-byte length after two reserved bytes
_LONG_VRS = frozenset(
    (
        b"OB",
        b"OD",
        b"OF",
        b"OL",
        b"OV",
        b"OW",
        b"SQ",
        b"SV",
        b"UC",
        b"UN",
        b"UR",
        b"UT",
        b"UV",
    )
)
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_MAX_DEPTH = 16

_TAG = struct.Struct("<HH")
_IMPLICIT_HEADER = struct.Struct("<HHI")
_EXPLICIT_HEADER = struct.Struct("<HH2sH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

# PS3.5 6.2: an IS value as pydicom keeps it; anything else is left to pydicom.
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Character sets whose ASCII bytes may stand for other characters (JIS X 0201).
_ODD_ASCII = ("ISO_IR 13", "ISO 2022 IR 13")


class Unsure(Exception):
    """The walk cannot promise the same answer as pydicom."""


@dataclass(frozen=True)
class DataSetHead:
    """The first bytes of a data set (after the file meta) and how it is encoded."""

    data: bytes
    transfer_syntax: str
    # True when ``data`` holds the whole data set.
    whole: bool


def scan_layout(
    head: DataSetHead, through: int = _LAST_WANTED
) -> dict[str, str | None] | None:
    """Return the layout attributes found in ``head``, or ``None`` when unsure.

    ``through`` stops the walk after that tag: only the attributes up to it
    are returned (``SOP_INSTANCE_UID``, near the start, needs a few elements).
    """
    if head.transfer_syntax in _NOT_SCANNED:
        return None
    walk = ElementWalk(head.data, implicit=head.transfer_syntax == _IMPLICIT)
    try:
        raw = walk.top_level(head.whole, through)
        return _texts(raw, through)
    except (Unsure, struct.error, UnicodeDecodeError):
        return None


class ElementWalk:
    """A walk over the elements of a little-endian data set."""

    def __init__(self, data: bytes, implicit: bool) -> None:
        self.data = data
        self.implicit = implicit
        self.offset = 0

    def top_level(
        self, whole: bool, through: int = _LAST_WANTED
    ) -> dict[int, tuple[bytes, bytes]]:
        """Return the raw values and VRs of the wanted top-level elements."""
        # The hot loop of every instance received: element headers are read
        # inline, with one unpack each (see header() for the same rules).
        found: dict[int, tuple[bytes, bytes]] = {}
        data, implicit = self.data, self.implicit
        end = len(data)
        offset = self.offset
        while offset < end:
            if implicit:
                group, element, length = _IMPLICIT_HEADER.unpack_from(data, offset)
                vr = b""
                offset += 8
            else:
                group, element, vr, length = _EXPLICIT_HEADER.unpack_from(data, offset)
                if group == 0xFFFE:
                    (length,) = _U32.unpack_from(data, offset + 4)
                    vr = b""
                    offset += 8
                elif vr in _LONG_VRS:
                    (length,) = _U32.unpack_from(data, offset + 8)
                    offset += 12
                else:
                    offset += 8
            tag = group << 16 | element
            if tag > through:
                return found
            if length == _UNDEFINED:
                if tag in _WANTED:
                    raise Unsure(f"tag {tag:08X} of undefined length")
                self.offset = offset
                self._skip_undefined(vr, 0)
                offset = self.offset
                continue
            if offset + length > end:
                raise Unsure("value runs past the head")
            if tag in _WANTED:
                found[tag] = (vr, data[offset : offset + length])
            offset += length
        self.offset = offset
        if not whole:
            # The head ended before the last wanted tag: it may lie beyond.
            raise Unsure("head ends before the layout's last attribute")
        return found

    def header(self, implicit: bool) -> tuple[int, bytes, int]:
        """Read an element header; return its tag, VR ("" if implicit), length."""
        group, element = _TAG.unpack_from(self.data, self.offset)
        tag = group << 16 | element
        if implicit or group == 0xFFFE:
            (length,) = _U32.unpack_from(self.data, self.offset + 4)
            self.offset += 8
            return tag, b"", length
        vr = self.data[self.offset + 4 : self.offset + 6]
        if vr in _LONG_VRS:
            (length,) = _U32.unpack_from(self.data, self.offset + 8)
            self.offset += 12
        else:
            (length,) = _U16.unpack_from(self.data, self.offset + 6)
            self.offset += 8
        return tag, vr, length

    def value(self, length: int) -> bytes:
        """Return the next ``length`` bytes, or raise if the head ends first."""
        start = self.offset
        self.offset += length
        if self.offset > len(self.data):
            raise Unsure("value runs past the head")
        return self.data[start : self.offset]

    def _skip_undefined(self, vr: bytes, depth: int) -> None:
        """Skip a sequence of undefined length, items and all."""
        if depth > _MAX_DEPTH:
            raise Unsure("sequences nested too deep")
        # PS3.5 6.2.2: an UN of undefined length holds Implicit VR LE items.
        implicit = self.implicit or vr == b"UN"
        while True:
            tag, _, length = self.header(True)
            if tag == _SEQUENCE_END:
                return
            if tag != _ITEM:
                raise Unsure(f"tag {tag:08X} inside a sequence")
            if length == _UNDEFINED:
                self._skip_item(implicit, depth)
            else:
                self.value(length)

    def _skip_item(self, implicit: bool, depth: int) -> None:
        """Skip the elements of an item of undefined length."""
        while True:
            tag, vr, length = self.header(implicit)
            if tag == _ITEM_END:
                return
            if length == _UNDEFINED:
                self._skip_undefined(vr, depth + 1)
            else:
                self.value(length)


def _texts(
    found: dict[int, tuple[bytes, bytes]], through: int = _LAST_WANTED
) -> dict[str, str | None]:
    """Turn raw values into the layout's texts, for the tags up to ``through``."""
    charset = found.get(0x00080005, (b"", b""))[1]
    if any(odd.encode() in charset for odd in _ODD_ASCII):
        raise Unsure("character set with its own ASCII range")
    texts: dict[str, str | None] = {}
    for tag, (keyword, expected_vr) in _WANTED.items():
        if tag == 0x00080005 or tag > through:
            continue
        if tag not in found:
            texts[keyword] = None
            continue
        vr, raw = found[tag]
        if vr and vr.decode("ascii", "replace") != expected_vr:
            raise Unsure(f"{keyword} has VR {vr!r}")
        texts[keyword] = _text(raw, expected_vr)
    return texts


def _text(raw: bytes, vr: str) -> str:
    """Return the text of one plain ASCII value."""
    if b"\\" in raw or b"\x1b" in raw or not raw.isascii():
        raise Unsure("multi-valued or non-ASCII value")
    value = raw.decode("ascii")
    if vr == "PN":
        return _person_name(value)
    text = value.strip(" \x00")
    if vr == "IS" and text and not _INTEGER.fullmatch(text):
        raise Unsure("IS value that is not a plain integer")
    return text


def _person_name(value: str) -> str:
    """Return a PN value's groups joined by "=", trailing empty groups dropped."""
    groups = value.rstrip(" \x00").split("=")
    while groups and not groups[-1]:
        groups.pop()
    if any(group != group.strip(" ") for group in groups):
        raise Unsure("spaces around a name group")
    return "=".join(groups)


def part10_head(first: bytes, whole: bool) -> DataSetHead | None:
    """Return the data set head of a Part-10 file from its first bytes.

    ``whole`` says whether ``first`` is the whole file. ``None`` when the
    bytes are not a Part-10 file this scan can read.
    """
    # PS3.10 7.1: preamble, "DICM", then group 0002 in Explicit VR LE, its
    # group length element first.
    if first[128:132] != b"DICM" or first[132:138] != b"\x02\x00\x00\x00UL":
        return None
    try:
        (meta_length,) = _U32.unpack_from(first, 140)
        meta = ElementWalk(first[144 : 144 + meta_length], implicit=False)
        syntax = None
        while meta.offset < len(meta.data):
            tag, _, length = meta.header(False)
            value = meta.value(length)
            if tag == 0x00020010:
                syntax = value.decode("ascii").strip(" \x00")
    except (Unsure, struct.error, UnicodeDecodeError):
        return None
    if syntax is None or 144 + meta_length > len(first):
        return None
    return DataSetHead(first[144 + meta_length :], syntax, whole)
