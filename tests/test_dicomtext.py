"""TextDecoder gives each element the text that element_text gives, sooner."""

import struct
import warnings
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset

from pacscommon.dicomtext import TextDecoder, element_text

# The chrSQEncoding samples keep their text in sequences, which pacsquery's
# keys never ask for.
CHARSET_FILES = sorted(p for p in get_charset_files("chr*.dcm") if "SQ" not in p)


def keywords_of(ds: Dataset) -> list[str]:
    """Return the keywords of the top-level elements a C-FIND answer may hold."""
    return [e.keyword for e in ds if e.keyword and e.VR not in ("SQ", "OB", "OW")]


@pytest.mark.parametrize("path", CHARSET_FILES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_every_charset_sample_reads_as_element_text_reads_it(path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some samples' own values are invalid
        expected_ds = dcmread(path)
        keywords = keywords_of(expected_ds)
        expected = {kw: element_text(expected_ds, kw) or "" for kw in keywords}
    decoder = TextDecoder()

    first, _ = decoder.texts(dcmread(path), keywords)
    again, _ = decoder.texts(dcmread(path), keywords)  # from what it has kept

    assert first == expected
    assert again == expected
    assert any(not text.isascii() for text in expected.values())


def explicit_le(*elements: tuple[int, str, bytes]) -> bytes:
    """Encode (tag, VR, value) elements in Explicit VR Little Endian."""
    out = b""
    for tag, vr, value in elements:
        out += struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value))
        out += value
    return out


def answer(name: bytes, uid: bytes) -> Dataset:
    """Return a UTF-8 answer read from its bytes, as a C-FIND answer is."""
    data = explicit_le(
        (0x00080005, "CS", b"ISO_IR 192"),
        (0x00100010, "PN", name),
        (0x0020000D, "UI", uid),
    )
    return read_dataset(BytesIO(data), is_implicit_VR=False, is_little_endian=True)


def test_repeated_values_are_the_same_and_warnings_are_never_skipped() -> None:
    decoder = TextDecoder()
    keys = ["PatientName", "StudyInstanceUID", "PatientID"]

    good = [decoder.texts(answer(b"M\xc3\xbcller^J", b"1.2.3\x00"), keys)]
    good.append(decoder.texts(answer(b"M\xc3\xbcller^J", b"1.2.4\x00"), keys))
    bad = [decoder.texts(answer(b"\xffBad^Name ", b"1.2.5\x00"), keys)]
    bad.append(decoder.texts(answer(b"\xffBad^Name ", b"1.2.6\x00"), keys))

    assert [record for record, _ in good] == [
        {"PatientName": "Müller^J", "StudyInstanceUID": "1.2.3", "PatientID": ""},
        {"PatientName": "Müller^J", "StudyInstanceUID": "1.2.4", "PatientID": ""},
    ]
    assert [messages for _, messages in good] == [[], []]
    for record, messages in bad:
        assert record["PatientName"] == "\ufffdBad^Name"
        assert len(messages) == 1 and "replacement characters" in messages[0]


def test_the_kept_values_are_bounded() -> None:
    decoder = TextDecoder(limit=3)
    for n in range(10):
        record, _ = decoder.texts(
            answer(b"A^B", f"1.2.{n}".encode()), ["StudyInstanceUID"]
        )
        assert record == {"StudyInstanceUID": f"1.2.{n}"}
    assert len(decoder.known) <= 3
