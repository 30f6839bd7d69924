"""Read the text of a C-FIND answer's elements straight from its bytes.

Most answers are plain: little endian, defined lengths, a simple character set,
values as the standard writes them. For those, walking the identifier's bytes
gives each asked keyword the very text that pydicom's decoding and
:class:`pacscommon.dicomtext.TextDecoder` give, in a fraction of the time.
:func:`scan_answer` answers only when it is sure of that, and returns ``None``
otherwise, so that the caller decodes that whole answer with pydicom (whose
warnings and replacement characters then say what was odd):

- big endian, deflate, a sequence, an undefined length, a value that runs past
  the end, tags out of order or repeated, an unknown VR;
- a VR other than the dictionary's, or one this scan does not read (AT, OB...);
- a SpecificCharacterSet with several values or code extensions (ISO 2022),
  GB18030 and GBK, or one pydicom does not know;
- bytes the character set cannot decode, an escape byte in text;
- a value pydicom would warn about (too long, not its VR's form) or parse
  another way (an IS or DS that is not a plain number, a UI that is not a UID).
"""

import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword

from pacscommon.headscan import ElementWalk, Unsure

# (0008,0005) SpecificCharacterSet
_CHARSET_TAG = 0x00080005
_UNDEFINED = 0xFFFFFFFF
# PS3.5 7.5: item and delimitation tags, never top-level elements of an answer
_ITEM_GROUP = 0xFFFE
# PS3.5 6.1.2.5.3: code extensions start with ESC
_ESC = b"\x1b"
# pydicom's text for a default-repertoire value, whatever the character set
_DEFAULT = "iso8859"
# PS3.5 6.2: every VR an explicit VR data set may name
_KNOWN_VRS = frozenset(
    vr.encode()
    for vr in (
        "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST "
        "SV TM UC UI UL UN UR US UT UV"
    ).split()
)
# Character sets whose text decodes in one step, as pydicom decodes it.
# NOTE: GB18030 and GBK are left to pydicom although they have no code
# extensions: their bytes are multi-byte, and nothing here needs them fast.
_SIMPLE_CHARSETS = {
    term: codec
    for term, codec in python_encoding.items()
    if not term.startswith("ISO 2022") and term not in ("GB18030", "GBK")
}

# pydicom's checks on reading (pydicom.valuerep MAX_VALUE_LEN, VR_REGEXES)
_MAX_LENGTH = {"LO": 64, "SH": 16, "ST": 1024, "LT": 10240}
_MAX_PN_GROUP = 64
_MAX_IS = 12
_MAX_UI = 64
_IS = re.compile(r" *[+-]?[0-9]+ *")
_DS = re.compile(r" *[+-]?([0-9]+|[0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *")
_UI = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
# struct formats of the binary number VRs
# Values whose text is kept, at most
_KNOWN_LIMIT = 100_000
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}

#: A value's bytes and its character set's Python codec, to its text.
TextReader = Callable[[bytes, str], str]


@dataclass(frozen=True)
class ScannedAnswer:
    """The text of an answer's asked keywords, and its character set's term."""

    texts: dict[str, str]
    charset: str


@dataclass(frozen=True)
class WantedKeys:
    """The keywords to read, by tag: each one's keyword, VR and reader.

    ``known`` keeps the text of values already read, by tag, bytes and codec:
    the answers to one query repeat most of theirs (names, dates, counts).
    """

    keywords: tuple[str, ...]
    by_tag: dict[int, tuple[str, bytes, TextReader]]
    known: dict[tuple[int, bytes, str], str] = field(default_factory=dict)


def wanted_keys(keywords: Iterable[str]) -> WantedKeys | None:
    """Return what to read for ``keywords``, or ``None`` if one cannot be read."""
    by_tag: dict[int, tuple[str, bytes, TextReader]] = {}
    names = tuple(dict.fromkeys(keywords))
    for keyword in names:
        tag = tag_for_keyword(keyword)
        if tag is None or tag == _CHARSET_TAG:
            return None
        vr = dictionary_VR(tag)
        reader = _READERS.get(vr)
        if reader is None:
            return None
        by_tag[tag] = (keyword, vr.encode(), reader)
    return WantedKeys(names, by_tag)


def scan_answer(
    data: bytes, implicit: bool, wanted: WantedKeys
) -> ScannedAnswer | None:
    """Return the text of each wanted keyword in a little-endian answer.

    Absent keywords are ``""``. ``None`` when pydicom must read the answer.
    """
    try:
        found, charset = _elements(data, implicit, wanted)
        codec = _SIMPLE_CHARSETS.get(charset)
        if codec is None:
            raise Unsure(f"character set {charset!r}")
        texts = dict.fromkeys(wanted.keywords, "")
        for tag, value in found.items():
            texts[wanted.by_tag[tag][0]] = _text(wanted, tag, value, codec)
        return ScannedAnswer(texts, charset)
    except (Unsure, struct.error, UnicodeDecodeError):
        return None


def _text(wanted: WantedKeys, tag: int, value: bytes, codec: str) -> str:
    """Return the text of one value, read once for all answers that repeat it."""
    key = (tag, value, codec)
    text = wanted.known.get(key)
    if text is None:
        text = wanted.by_tag[tag][2](value, codec)
        if len(wanted.known) >= _KNOWN_LIMIT:
            wanted.known.clear()
        wanted.known[key] = text
    return text


def _elements(
    data: bytes, implicit: bool, wanted: WantedKeys
) -> tuple[dict[int, bytes], str]:
    """Return the wanted elements' values and the character set's term."""
    if implicit and len(data) >= 6 and _letter(data[4]) and _letter(data[5]):
        # pydicom would take the first length for a VR and read explicit VR.
        raise Unsure("implicit VR data set that looks explicit")
    walk = ElementWalk(data, implicit)
    found: dict[int, bytes] = {}
    charset = ""
    previous = -1
    while walk.offset < len(data):
        tag, vr, length = walk.header(implicit)
        if tag <= previous or tag >> 16 == _ITEM_GROUP or length == _UNDEFINED:
            raise Unsure(f"tag {tag:08X} out of order, an item, or undefined length")
        if not implicit and vr not in _KNOWN_VRS:
            raise Unsure(f"unknown VR {vr!r}")
        previous = tag
        value = walk.value(length)
        if tag == _CHARSET_TAG:
            charset = _charset_term(vr, value)
        elif tag in wanted.by_tag:
            if not implicit and vr != wanted.by_tag[tag][1]:
                raise Unsure(f"tag {tag:08X} has VR {vr!r}")
            found[tag] = value
    return found, charset


def _letter(byte: int) -> bool:
    """Return whether a byte is an upper-case ASCII letter."""
    return 0x40 < byte < 0x5B


def _charset_term(vr: bytes, value: bytes) -> str:
    """Return the one term of a SpecificCharacterSet value."""
    if vr not in (b"", b"CS"):
        raise Unsure(f"SpecificCharacterSet with VR {vr!r}")
    term = value.decode(_DEFAULT).rstrip(" \x00")
    if "\\" in term:
        raise Unsure("several character sets")
    return term


def _strings(value: bytes, codec: str) -> str:
    """Return a default-repertoire value's text (AS, CS, DA, DT, TM)."""
    items = value.decode(_DEFAULT).rstrip(" \x00").split("\\")
    return "\\".join(item.strip(" \x00") for item in items)


def _application_entities(value: bytes, codec: str) -> str:
    """Return an AE value's text: leading and trailing spaces do not count."""
    items = value.decode(_DEFAULT).split("\\")
    return "\\".join(item.strip().strip(" \x00") for item in items)


def _uids(value: bytes, codec: str) -> str:
    """Return a UI value's text, each UID checked as pydicom checks it."""
    items = value.decode(_DEFAULT).rstrip(" \x00").split("\\")
    for item in items:
        if item and (len(item) > _MAX_UI or not _UI.fullmatch(item)):
            raise Unsure("not a UID")
    return "\\".join(items)


def _url(value: bytes, codec: str) -> str:
    """Return a UR value's text."""
    return value.decode(_DEFAULT).rstrip().strip(" \x00")


def _integers(value: bytes, codec: str) -> str:
    """Return an IS value's text: each number as written, spaces dropped."""
    items = value.decode(_DEFAULT).rstrip(" \x00").split("\\")
    texts = []
    for item in items:
        if not item.strip():
            # pydicom keeps a blank item as it is.
            texts.append(item.strip(" \x00"))
            continue
        if len(item) > _MAX_IS or not _IS.fullmatch(item):
            raise Unsure("IS value that is not a plain integer")
        texts.append(item.strip())
    return "\\".join(texts)


def _decimals(value: bytes, codec: str) -> str:
    """Return a DS value's text: a whole number without its decimals."""
    items = value.decode(_DEFAULT).strip().rstrip(" \x00").split("\\")
    texts = []
    for item in items:
        if not item.strip():
            texts.append(item.strip(" \x00"))
            continue
        if not _DS.fullmatch(item):
            raise Unsure("DS value that is not a plain number")
        number = float(item)
        texts.append(str(int(number)) if number.is_integer() else item.strip())
    return "\\".join(texts)


def _texts(value: bytes, codec: str, vr: str) -> str:
    """Return a SH, LO or UC value's text, decoded in the answer's character set."""
    items = _decoded(value, codec).split("\\")
    limit = _MAX_LENGTH.get(vr)
    if limit is not None and any(len(item) > limit for item in items):
        raise Unsure(f"{vr} value longer than {limit}")
    return "\\".join(item.strip(" \x00") for item in items)


def _single_text(value: bytes, codec: str, vr: str) -> str:
    """Return a ST, LT or UT value's text: one value, backslashes and all."""
    text = _decoded(value, codec)
    limit = _MAX_LENGTH.get(vr)
    if limit is not None and len(text) > limit:
        raise Unsure(f"{vr} value longer than {limit}")
    return text.strip(" \x00")


def _person_names(value: bytes, codec: str) -> str:
    """Return a PN value's text: groups joined by "=", trailing empty ones dropped."""
    names = []
    for name in _decoded(value.rstrip(b"\x00 "), codec).split("\\"):
        groups = name.split("=")
        if len(groups) > 3 or any(len(g) > _MAX_PN_GROUP for g in groups):
            raise Unsure("PN value with too many or too long groups")
        while groups and not groups[-1]:
            groups.pop()
        names.append("=".join(groups))
    return "\\".join(names)


def _decoded(value: bytes, codec: str) -> str:
    """Return text in one character set; raise on code extensions or bad bytes."""
    if _ESC in value:
        raise Unsure("escape sequence in text")
    return value.decode(codec)


def _numbers(vr: str) -> TextReader:
    """Return the reader of a binary number VR."""
    size = struct.calcsize("<" + _NUMBERS[vr])

    def read(value: bytes, codec: str) -> str:
        """Return each number's decimal text, a whole float without decimals."""
        if len(value) % size:
            raise Unsure(f"{vr} value of {len(value)} bytes")
        numbers = struct.unpack(f"<{len(value) // size}{_NUMBERS[vr]}", value)
        return "\\".join(_number_text(n) for n in numbers)

    return read


def _number_text(number: float) -> str:
    """Return a number's text as :func:`pacscommon.dicomtext.value_text` does."""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


def _text_reader(vr: str, single: bool) -> TextReader:
    """Return the reader of a text VR."""
    if single:
        return lambda value, codec: _single_text(value, codec, vr)
    return lambda value, codec: _texts(value, codec, vr)


_READERS: dict[str, TextReader] = {
    **dict.fromkeys(("AS", "CS", "DA", "DT", "TM"), _strings),
    "AE": _application_entities,
    "UI": _uids,
    "UR": _url,
    "IS": _integers,
    "DS": _decimals,
    "PN": _person_names,
    **{vr: _text_reader(vr, single=False) for vr in ("SH", "LO", "UC")},
    **{vr: _text_reader(vr, single=True) for vr in ("ST", "LT", "UT")},
    **{vr: _numbers(vr) for vr in _NUMBERS},
}
