"""An answer read from its bytes gives the very text that pydicom's path gives.

Each answer is checked both ways: pydicom decodes it (as the Finder does) and
TextDecoder turns its values into text, and the scan reads the same bytes.
Where the scan answers, the texts and character set terms must be the same and
pydicom must have warned of nothing; where it does not, the caller falls back
on pydicom for the whole answer.
"""

import struct
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import dcmread
from pydicom.datadict import DicomDictionary, dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pacscommon.answerscan import ScannedAnswer, scan_answer, wanted_keys
from pacscommon.dicomtext import TextDecoder
from pacscommon.queries import FindResponse, decoded
from pacsquery.finder import read_match
from pacsquery.identifiers import SERIES_COLUMNS, STUDY_COLUMNS, STUDY_COUNT_COLUMNS
from pacsquery.levels import PATIENT_LEVEL_KEYWORDS, STUDY_LEVEL_KEYWORDS
from pacsquery.query import charset_of

DATA = Path(pydicom.__file__).parent / "data"
REAL_FILES = sorted((DATA / "test_files").glob("*.dcm")) + sorted(
    (DATA / "charset_files").glob("*.dcm")
)
CHARSET_TAG = 0x00080005
PENDING = 0xFF00
# Keys users often add at SERIES level with --return-keys.
SERIES_EXTRAS = (
    "BodyPartExamined",
    "SeriesDate",
    "SeriesTime",
    "ProtocolName",
    "PerformingPhysicianName",
    "Manufacturer",
    "InstitutionName",
    "StationName",
)
#: Every keyword the query levels ask for.
LEVEL_KEYWORDS = tuple(
    sorted(
        PATIENT_LEVEL_KEYWORDS
        | STUDY_LEVEL_KEYWORDS
        | {*STUDY_COLUMNS, *SERIES_COLUMNS, *STUDY_COUNT_COLUMNS, *SERIES_EXTRAS}
    )
)
# PS3.5 7.1.2: explicit VRs with a 4-byte length
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT"}
LONG_VRS.add("UV")

Element = tuple[int, str, bytes]


def encode(elements: list[Element], implicit: bool, ordered: bool = True) -> bytes:
    """Return elements (tag, VR, value) encoded in little endian, by hand."""
    out = bytearray()
    for tag, vr, value in sorted(elements) if ordered else elements:
        out += struct.pack("<HH", tag >> 16, tag & 0xFFFF)
        if implicit:
            out += struct.pack("<I", len(value))
        elif vr in LONG_VRS:
            out += vr.encode() + b"\x00\x00" + struct.pack("<I", len(value))
        else:
            out += vr.encode() + struct.pack("<H", len(value))
        out += value
    return bytes(out)


def pydicom_texts(
    data: bytes, implicit: bool, keywords: tuple[str, ...]
) -> tuple[dict[str, str], list[str], list[str]]:
    """Return the current path's texts, its warnings and the charset terms."""
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = decoded(data, syntax)
    assert ds is not None
    record, messages = TextDecoder().texts(ds, keywords)
    told = [str(w.message) for w in caught] + messages
    return record, told, charset_of(ds)


def compare(data: bytes, implicit: bool, keywords: tuple[str, ...]) -> bool:
    """Check the scan against pydicom's path; return whether the scan answered."""
    wanted = wanted_keys(keywords)
    assert wanted is not None
    scanned = scan_answer(data, implicit, wanted)
    if scanned is None:
        return False
    record, told, charset = pydicom_texts(data, implicit, keywords)
    assert told == [], (data, told)
    assert scanned.texts == record, data
    assert [scanned.charset] == charset
    return True


def file_elements(path: Path) -> list[Element] | None:
    """Return a real file's top-level elements (tag, VR, bytes), ``None`` if broken.

    An element of implicit VR gets its dictionary VR; one without (unknown or
    ambiguous) is left out, as are sequences and undefined lengths.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, force=True)
            raws = [ds.get_item(tag) for tag in ds.keys()]
    except Exception:  # noqa: BLE001 - some test files are broken on purpose
        return None
    elements = []
    for raw in raws:
        if not isinstance(raw, RawDataElement) or raw.value is None:
            continue
        vr = element_vr(raw)
        if vr and raw.length != 0xFFFFFFFF and raw.tag >> 16 not in (2, 0xFFFE):
            elements.append((int(raw.tag), vr, bytes(raw.value)))
    if CHARSET_TAG in ds:
        # pydicom converted it on reading: write its value back as bytes.
        value = ds.SpecificCharacterSet
        terms = [value] if isinstance(value, str) else list(value)
        text = "\\".join(terms).encode()
        elements.append((CHARSET_TAG, "CS", text + b" " * (len(text) % 2)))
    return elements


def element_vr(raw: RawDataElement) -> str | None:
    """Return the VR an element is written with: its own, or the dictionary's."""
    if raw.VR:
        return str(raw.VR)
    try:
        vr = str(dictionary_VR(raw.tag))
    except KeyError:
        return None
    return None if " or " in vr else vr


def test_every_level_keyword_can_be_read() -> None:
    wanted = wanted_keys(LEVEL_KEYWORDS)

    assert wanted is not None
    assert set(wanted.keywords) == set(LEVEL_KEYWORDS)


def test_keywords_of_other_vrs_are_left_to_pydicom() -> None:
    assert wanted_keys(["PatientName", "ReferencedSOPClassUID"]) is not None
    assert wanted_keys(["PatientName", "OffendingElement"]) is None  # AT
    assert wanted_keys(["PatientName", "ReferencedStudySequence"]) is None  # SQ
    assert wanted_keys(["PatientName", "PixelData"]) is None  # OB or OW
    assert wanted_keys(["SpecificCharacterSet"]) is None


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_each_element_of_the_real_files_reads_as_pydicom_reads_it(
    path: Path,
) -> None:
    elements = file_elements(path)
    if elements is None:
        pytest.skip("pydicom cannot read this file")
    charset = [e for e in elements if e[0] == CHARSET_TAG]
    answered = 0
    tried = 0
    for tag, vr, value in elements:
        keyword = keyword_for_tag(tag)
        if tag == CHARSET_TAG or not keyword or wanted_keys([keyword]) is None:
            continue
        for implicit in (True, False):
            tried += 1
            data = encode([*charset, (tag, vr, value)], implicit)
            answered += compare(data, implicit, (keyword,))
    terms = charset[0][2].decode().strip().split("\\") if charset else []
    if len(terms) > 1 or terms and terms[0].startswith(("ISO 2022", "GB")):
        assert answered == 0
    elif tried:
        # Most elements are read; the others are left to pydicom.
        assert answered > tried / 2


# Each charset file's level keywords as one answer: read fast unless its
# character set has code extensions or is GB18030.
FAST_CHARSET_FILES = {
    "chrArab.dcm": True,
    "chrFren.dcm": True,
    "chrFrenMulti.dcm": True,
    "chrGerm.dcm": True,
    "chrGreek.dcm": True,
    "chrH31.dcm": False,
    "chrH32.dcm": False,
    "chrHbrw.dcm": True,
    "chrI2.dcm": False,
    "chrJapMulti.dcm": False,
    "chrJapMultiExplicitIR6.dcm": False,
    "chrKoreanMulti.dcm": False,
    "chrRuss.dcm": True,
    "chrSQEncoding.dcm": True,
    "chrSQEncoding1.dcm": False,
    "chrX1.dcm": True,
    "chrX2.dcm": False,
}


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize("name", sorted(FAST_CHARSET_FILES))
def test_charset_files_as_answers(name: str, implicit: bool) -> None:
    found = file_elements(DATA / "charset_files" / name)
    assert found is not None
    elements = [
        element
        for element in found
        if keyword_for_tag(element[0]) in LEVEL_KEYWORDS or element[0] == CHARSET_TAG
    ]
    data = encode(elements, implicit)

    fast = compare(data, implicit, LEVEL_KEYWORDS)

    assert fast == FAST_CHARSET_FILES[name]
    record, _, charset = pydicom_texts(data, implicit, LEVEL_KEYWORDS)
    assert charset != [""]
    if not name.startswith("chrSQEncoding"):
        # The names of chrSQEncoding*.dcm are in a sequence.
        assert record["PatientName"]


def answer(keyword: str, vr: str, value: bytes, charset: bytes | None) -> list[Element]:
    """Return an answer's elements: one value, and a character set if given."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    assert tag is not None
    elements = [(tag, vr, value)]
    if keyword != "StudyInstanceUID":
        elements.append((0x0020000D, "UI", b"1.2.3\x00"))
    if charset is not None:
        elements.append((CHARSET_TAG, "CS", charset))
    return elements


LATIN1 = b"ISO_IR 100"
UTF8 = b"ISO_IR 192"
# keyword, VR, value, SpecificCharacterSet, whether the scan answers
EDGE_CASES: list[tuple[str, str, bytes, bytes | None, bool]] = [
    ("PatientName", "PN", b"Doe^John", None, True),
    ("PatientName", "PN", b"Doe^Jo ", None, True),
    ("PatientName", "PN", b"Doe^Jon\x00", None, True),
    ("PatientName", "PN", b" Doe^John^^^ ", None, True),
    ("PatientName", "PN", b"Doe^John=", None, True),
    ("PatientName", "PN", b"=Doe", None, True),
    ("PatientName", "PN", b"Doe^John\\Roe^Jane ", None, True),
    ("PatientName", "PN", b"", None, True),
    ("PatientName", "PN", b"  ", None, True),
    ("PatientName", "PN", b"a=b=c=d ", None, False),
    ("PatientName", "PN", b"X" * 65 + b" ", None, False),
    (
        "PatientName",
        "PN",
        "Yamada^Tarou=山田^太郎=やまだ^たろう".encode(),
        UTF8,
        True,
    ),
    ("PatientName", "PN", "Müller^Jürgen".encode("latin-1"), LATIN1, True),
    ("PatientName", "PN", "Müller^Jürgen".encode("latin-1"), None, True),
    ("PatientName", "PN", "Müller^Jürgen".encode("latin-1"), UTF8, False),
    ("PatientName", "PN", "Иванов^Иван".encode("iso8859_5"), b"ISO_IR 144", True),
    ("PatientName", "PN", b"\x1b$B;3ED\x1b(B^Taro", b"\\ISO 2022 IR 87", False),
    ("PatientName", "PN", b"Doe^John", b"ISO 2022 IR 100", False),
    ("PatientName", "PN", b"Doe^John", b"GB18030", False),
    ("PatientName", "PN", b"Doe^John", b"ISO_IR 999", False),
    ("PatientName", "PN", b"Doe^John", b" ISO_IR 100", False),
    ("PatientName", "PN", b"Doe^John", b"ISO_IR 100 ", True),
    ("PatientName", "PN", b"Doe^John", b"", True),
    ("PatientName", "PN", b"Doe\x1b^John", LATIN1, False),
    ("StudyDescription", "LO", "Tête et cou".encode("latin-1"), LATIN1, True),
    ("StudyDescription", "LO", "Tête et cou".encode(), UTF8, True),
    ("StudyDescription", "LO", b"\xff\xfe", UTF8, False),
    ("StudyDescription", "LO", b" Head\\Neck ", None, True),
    ("StudyDescription", "LO", b"A" * 64, None, True),
    ("StudyDescription", "LO", b"A" * 64 + b" ", None, False),
    ("StudyDescription", "LO", b"odd\x00", None, True),
    ("StudyDescription", "LO", b"", None, True),
    ("AccessionNumber", "SH", b"A" * 16, None, True),
    ("AccessionNumber", "SH", b"A" * 17 + b" ", None, False),
    ("ModalitiesInStudy", "CS", b"CT\\MR ", None, True),
    ("ModalitiesInStudy", "CS", b"CT\\\\MR", None, True),
    ("PatientSex", "CS", b"o ", None, True),
    ("StudyDate", "DA", b"20240101", None, True),
    ("StudyDate", "DA", b"20240101-20241231 ", None, True),
    ("StudyTime", "TM", b"101500.123 ", None, True),
    ("PatientAge", "AS", b"042Y", None, True),
    ("NumberOfStudyRelatedSeries", "IS", b" 42 ", None, True),
    ("NumberOfStudyRelatedSeries", "IS", b"+7", None, True),
    ("NumberOfStudyRelatedSeries", "IS", b"-0012 ", None, True),
    ("NumberOfStudyRelatedSeries", "IS", b"1\\ 2 \\\\3", None, True),
    ("NumberOfStudyRelatedSeries", "IS", b"  ", None, True),
    ("NumberOfStudyRelatedSeries", "IS", b"1.0 ", None, False),
    ("NumberOfStudyRelatedSeries", "IS", b"abc ", None, False),
    ("NumberOfStudyRelatedSeries", "IS", b"1234567890123 ", None, False),
    ("PatientWeight", "DS", b"1.0 ", None, True),
    ("PatientWeight", "DS", b"2.50", None, True),
    ("PatientWeight", "DS", b" -3.5e2 ", None, True),
    ("PatientWeight", "DS", b".5\\5.\\+1E1 ", None, True),
    ("PatientWeight", "DS", b"1e400 ", None, True),
    ("PatientWeight", "DS", b"nan ", None, False),
    ("PatientWeight", "DS", b"1,5 ", None, False),
    ("StudyInstanceUID", "UI", b"1.2.840.10008.1.2\x00", None, True),
    ("SOPClassesInStudy", "UI", b"1.2.3\\1.2.4 ", None, True),
    ("StudyInstanceUID", "UI", b"1.2.03\x00", None, False),
    ("StudyInstanceUID", "UI", b"1." + b"2" * 63 + b"\x00", None, False),
    ("PatientComments", "LT", b"line one\\still one ", None, True),
    ("PatientComments", "LT", "Bemerkung: ß".encode("latin-1"), LATIN1, True),
    ("AdditionalPatientHistory", "LT", b"x" * 10241 + b" ", None, False),
    ("NumberOfPatientRelatedStudies", "IS", b"3 ", None, True),
]


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize(
    ("keyword", "vr", "value", "charset", "fast"),
    EDGE_CASES,
    ids=[f"{c[0]}-{c[2][:12]!r}-{c[3]!r}" for c in EDGE_CASES],
)
def test_edge_cases_read_as_pydicom_reads_them(
    keyword: str,
    vr: str,
    value: bytes,
    charset: bytes | None,
    fast: bool,
    implicit: bool,
) -> None:
    data = encode(answer(keyword, vr, value, charset), implicit)

    assert compare(data, implicit, (keyword, "StudyInstanceUID")) == fast


def binary_answer(vr: str, value: bytes) -> list[Element]:
    """Return an answer with one binary number value of VR ``vr``."""
    tag = next(tag for tag, entry in DicomDictionary.items() if entry[0] == vr)
    return [(tag, vr, value)]


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize(
    ("vr", "value", "fast"),
    [
        ("US", struct.pack("<H", 5), True),
        ("US", struct.pack("<3H", 1, 2, 3), True),
        ("US", b"\x05\x00\x00", False),
        ("SS", struct.pack("<h", -1), True),
        ("UL", struct.pack("<2L", 7, 4000000000), True),
        ("SL", struct.pack("<l", -70000), True),
        ("FL", struct.pack("<f", 0.1), True),
        ("FL", struct.pack("<f", 2.0), True),
        ("FD", struct.pack("<2d", 1.0, -2.25), True),
        ("FD", b"", True),
    ],
)
def test_binary_numbers_read_as_pydicom_reads_them(
    vr: str, value: bytes, fast: bool, implicit: bool
) -> None:
    elements = binary_answer(vr, value)
    keyword = keyword_for_tag(elements[0][0])

    assert compare(encode(elements, implicit), implicit, (keyword,)) == fast


PLAIN = [
    (0x00080005, "CS", b"ISO_IR 100"),
    (0x00080052, "CS", b"STUDY "),
    (0x00100010, "PN", b"Doe^John"),
    (0x0020000D, "UI", b"1.2.3\x00"),
]
KEYS = ("PatientName", "StudyInstanceUID")
# (0020,000D) as UN of undefined length, then its sequence delimiter
UNDEFINED_UID = struct.pack("<HH2sHIHHI", 0x20, 0xD, b"UN", 0, 0xFFFFFFFF, 0xFFFE,
                            0xE0DD, 0)  # fmt: skip


def test_a_plain_answer_is_read_in_both_syntaxes() -> None:
    for implicit in (True, False):
        scanned = scan_answer(encode(PLAIN, implicit), implicit, wanted(KEYS))
        assert scanned == ScannedAnswer(
            {"PatientName": "Doe^John", "StudyInstanceUID": "1.2.3"}, "ISO_IR 100"
        )


def test_absent_keywords_are_empty_and_an_empty_answer_is_read() -> None:
    scanned = scan_answer(b"", True, wanted(KEYS))

    assert scanned == ScannedAnswer({"PatientName": "", "StudyInstanceUID": ""}, "")
    assert compare(b"", True, KEYS)


def with_private(implicit: bool) -> bytes:
    """Return the plain answer with a private element and a sequence."""
    private = [(0x00090010, "LO", b"ACME "), (0x00091001, "OB", b"\x01\x02")]
    sequence = [(0x00081110, "SQ", b"")]
    return encode([*PLAIN, *private, *sequence], implicit)


@pytest.mark.parametrize(
    ("name", "data", "implicit"),
    [
        ("undefined length", encode(PLAIN[:3], False) + UNDEFINED_UID, False),
        ("truncated value", encode(PLAIN, True)[:-2], True),
        ("trailing bytes", encode(PLAIN, True) + b"\x00\x00\x00", True),
        ("out of order", encode(PLAIN[::-1], True, ordered=False), True),
        ("repeated tag", encode([*PLAIN, PLAIN[2]], True, ordered=True), True),
        (
            "VR unlike the dictionary's",
            encode([*PLAIN[:2], (0x00100010, "LO", b"Doe^John"), PLAIN[3]], False),
            False,
        ),  # fmt: skip
        (
            "unknown VR",
            encode([*PLAIN[:2], (0x00100020, "ZZ", b"ID"), *PLAIN[2:]], False),
            False,
        ),  # fmt: skip
        ("item tag", encode([*PLAIN, (0xFFFEE000, "", b"")], True), True),
        (
            "explicit-looking implicit",
            encode([(0x00080005, "CS", b"A" * 0x4141)], True),
            True,
        ),  # fmt: skip
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_odd_structures_are_left_to_pydicom(
    name: str, data: bytes, implicit: bool
) -> None:
    assert scan_answer(data, implicit, wanted(KEYS)) is None


def test_private_elements_and_sequences_not_asked_for_are_stepped_over() -> None:
    for implicit in (True, False):
        assert compare(with_private(implicit), implicit, KEYS)


def wanted(keywords: tuple[str, ...]) -> Any:
    """Return what to read for ``keywords``, checked."""
    found = wanted_keys(keywords)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("syntax", "charset", "scanned"),
    [
        (ImplicitVRLittleEndian, b"ISO_IR 100", True),
        (ExplicitVRLittleEndian, b"ISO_IR 192", True),
        (ExplicitVRLittleEndian, b"\\ISO 2022 IR 87", False),
        (ExplicitVRBigEndian, b"ISO_IR 100", False),
        (DeflatedExplicitVRLittleEndian, b"ISO_IR 100", False),
    ],
)
def test_the_finder_reads_what_it_can_and_decodes_the_rest(
    syntax: UID, charset: bytes, scanned: bool
) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = charset.decode().split("\\")
    ds.PatientName = "Doe^John"
    ds.StudyInstanceUID = "1.2.3"
    ds.set_original_encoding(syntax.is_implicit_VR, syntax.is_little_endian)
    from pynetdicom.dsutils import encode as pydicom_encode

    data = pydicom_encode(
        ds, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
    )
    assert data is not None
    rsp = FindResponse(PENDING, data, syntax)

    match = read_match(rsp, wanted(KEYS))

    assert isinstance(match, ScannedAnswer) == scanned
    assert isinstance(match, Dataset) != scanned
    if isinstance(match, ScannedAnswer):
        assert match.texts == {"PatientName": "Doe^John", "StudyInstanceUID": "1.2.3"}
    assert read_match(rsp, None) is rsp.identifier


def test_values_read_once_give_the_same_text_again() -> None:
    keywords = tuple(dict.fromkeys(case[0] for case in EDGE_CASES))
    shared = wanted(keywords)
    for _ in range(2):
        for keyword, vr, value, charset, _ in EDGE_CASES:
            for implicit in (True, False):
                data = encode(answer(keyword, vr, value, charset), implicit)
                again = scan_answer(data, implicit, shared)
                assert again == scan_answer(data, implicit, wanted(keywords))

    assert len(shared.known) > 20
