"""Build the bad-input corpus: data sets, results files and option values.

``python tests/badinputs.py DEST`` writes every case under ``DEST`` and a
``manifest.json`` that names them; ``tests/test_bad_inputs.py`` builds the same
cases in its own temporary directory and runs each through the program it
targets:

- data sets (``store_cases``) go to pacslistener over a real association, as
  their bytes stand (pynetdicom streams the file after its meta, undecoded), or
  with DCMTK's storescu where the file has no meta at all. Each is either
  stored (the file parses, with the right SOPInstanceUID and the very bytes
  sent) or refused (a failure status and a log line);
- results files (``results_cases``) go to pacsretrieve: exit 2, one ``error:``
  line;
- option values (``option_cases``) go to pacsquery, pacsretrieve or
  pacslistener: exit 2, one ``error:`` line (or argparse's usage error).

Data sets are written byte by byte where pydicom would mend them (odd lengths,
undefined lengths, bad values), with pydicom where it writes the case as is
(Big Endian, deflate).
"""

from __future__ import annotations

import json
import struct
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
STORED, REFUSED = "stored", "refused"
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR",
            "UT", "UV"}  # fmt: skip
UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True)
class StoreCase:
    """A data set to send to pacslistener, and what must become of it."""

    name: str
    path: Path
    SOPInstanceUID: str
    expect: str  # STORED or REFUSED
    sender: str = "pynetdicom"  # or "storescu" (a file without meta)
    note: str = ""
    bug: str | None = None  # set: a known product bug, the test is xfail


@dataclass(frozen=True)
class CliCase:
    """A command line of one program that must end in a usage or input error."""

    name: str
    program: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    expect: int = 2
    bug: str | None = None  # set: a known product bug, the test is xfail
    note: str = ""


# -- raw encoding (PS3.5 7.1) -------------------------------------------------


def element(tag: int, vr: str, value: bytes, length: int | None = None) -> bytes:
    """Encode one explicit VR little endian element; ``length`` overrides."""
    size = len(value) if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in LONG_VRS:
        return head + b"\0\0" + struct.pack("<I", size) + value
    return head + struct.pack("<H", size) + value


def implicit(tag: int, value: bytes, length: int | None = None) -> bytes:
    """Encode one implicit VR little endian element (also items, delimiters)."""
    size = len(value) if length is None else length
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, size) + value


def item(body: bytes) -> bytes:
    """Encode an item of undefined length, with its delimiter."""
    return implicit(0xFFFEE000, b"", UNDEFINED) + body + implicit(0xFFFEE00D, b"")


def sequence(tag: int, *items: bytes, vr: str = "SQ") -> bytes:
    """Encode a sequence of undefined length, with its delimiter."""
    body = b"".join(items) + implicit(0xFFFEE0DD, b"")
    return element(tag, vr, b"", UNDEFINED) + body


def text(value: str, pad: bytes = b" ", encoding: str = "ascii") -> bytes:
    """Return a text value padded to an even length."""
    raw = value.encode(encoding)
    return raw + pad if len(raw) % 2 else raw


def base_elements(sop_uid: str, series_uid: str) -> dict[int, bytes]:
    """Return the elements of a valid 8x8 Secondary Capture data set, by tag."""
    uid = lambda v: text(v, b"\0")  # noqa: E731
    return {
        0x00080016: element(0x00080016, "UI", uid(SC_STORAGE)),
        0x00080018: element(0x00080018, "UI", uid(sop_uid)),
        0x00080020: element(0x00080020, "DA", b"20240102"),
        0x00080060: element(0x00080060, "CS", b"OT"),
        0x00100010: element(0x00100010, "PN", text("Bad^Input")),
        0x00100020: element(0x00100020, "LO", text("BAD1")),
        0x0020000D: element(0x0020000D, "UI", uid("1.2.826.0.1.3680043.8.498.88")),
        0x0020000E: element(0x0020000E, "UI", uid(series_uid)),
        0x00200011: element(0x00200011, "IS", b"1 "),
        0x00200013: element(0x00200013, "IS", b"1 "),
        0x00280002: element(0x00280002, "US", struct.pack("<H", 1)),
        0x00280004: element(0x00280004, "CS", b"MONOCHROME2 "),
        0x00280010: element(0x00280010, "US", struct.pack("<H", 8)),
        0x00280011: element(0x00280011, "US", struct.pack("<H", 8)),
        0x00280100: element(0x00280100, "US", struct.pack("<H", 8)),
        0x00280101: element(0x00280101, "US", struct.pack("<H", 8)),
        0x00280102: element(0x00280102, "US", struct.pack("<H", 7)),
        0x00280103: element(0x00280103, "US", struct.pack("<H", 0)),
        0x7FE00010: element(0x7FE00010, "OB", bytes(range(64))),
    }


def part10(
    path: Path, body: bytes, sop_uid: str, syntax: str = ExplicitVRLittleEndian
) -> Path:
    """Write a preamble, ``DICM``, a file meta of our own and ``body`` as is."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    with lenient():
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(SC_STORAGE)
        meta.MediaStorageSOPInstanceUID = UID(sop_uid)
        meta.TransferSyntaxUID = UID(syntax)
        meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
        write_file_meta_info(buffer, meta, enforce_standard=True)
    path.write_bytes(b"\0" * 128 + b"DICM" + buffer.getvalue() + body)
    return path


@contextmanager
def lenient() -> Iterator[None]:
    """Let pydicom encode and read values their VR does not allow, quietly."""
    saved = (config.settings.reading_validation_mode,
             config.settings.writing_validation_mode)  # fmt: skip
    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        (config.settings.reading_validation_mode,
         config.settings.writing_validation_mode) = saved  # fmt: skip


# -- data sets for pacslistener ------------------------------------------------

Edit = Callable[[dict[int, bytes], str], None]


def _raw_case(dest: Path, name: str, expect: str, edit: Edit, note: str,
              sop_uid: str | None = None, meta_uid: str | None = None,
              bug: str | None = None) -> StoreCase:  # fmt: skip
    """Write a data set from the base elements changed by ``edit``."""
    sop = sop_uid or generate_uid()
    elements = base_elements(sop, generate_uid())
    edit(elements, sop)
    body = b"".join(elements[t] for t in sorted(elements))
    path = part10(dest / f"{name}.dcm", body, meta_uid or sop)
    return StoreCase(name, path, sop, expect, note=note, bug=bug)


def _set(tag: int, vr: str, value: bytes, length: int | None = None) -> Edit:
    def edit(elements: dict[int, bytes], sop: str) -> None:
        elements[tag] = element(tag, vr, value, length)

    return edit


def _drop(*tags: int) -> Edit:
    def edit(elements: dict[int, bytes], sop: str) -> None:
        for tag in tags:
            elements.pop(tag, None)

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(elements: dict[int, bytes], sop: str) -> None:
        for one in edits:
            one(elements, sop)

    return edit


def _add(raw: dict[int, bytes]) -> Edit:
    def edit(elements: dict[int, bytes], sop: str) -> None:
        elements.update(raw)

    return edit


def _truncate_pixels(elements: dict[int, bytes], sop: str) -> None:
    # PixelData claims 4096 bytes; 64 follow.
    elements[0x7FE00010] = element(0x7FE00010, "OB", bytes(64), 4096)


def _ref_item(uid: str) -> bytes:
    return item(element(0x00081150, "UI", text(SC_STORAGE, b"\0"))
                + element(0x00081155, "UI", text(uid, b"\0")))  # fmt: skip


def raw_store_cases(dest: Path) -> list[StoreCase]:
    """Return the data sets written byte by byte."""
    long_uid = "1.2.826.0.1.3680043.8.498." + "1234567890" * 6  # 86 characters
    huge_uid = "1.2.826.0.1.3680043.8.498." + "9" * 1000
    zeros_uid = "1.2.840.0010.000123.05.1"
    nested = sequence(0x00081115, item(sequence(0x00081140, _ref_item("1.2.3.4"))))
    private = {
        0x00090010: element(0x00090010, "LO", text("ACME 1.0")),
        0x00091001: element(0x00091001, "LO", text("private text")),
        0x00091002: element(0x00091002, "OB", bytes(range(10))),
        0x00091003: element(0x00091003, "UN", b"\x01\x02\x03\x04"),
    }
    un_sequence = {
        0x00110010: element(0x00110010, "LO", text("ACME SEQ")),
        # PS3.5 6.2.2: UN of undefined length holds implicit VR items.
        0x00111010: element(0x00111010, "UN", b"", UNDEFINED)
        + item(implicit(0x00111011, b"AB")) + implicit(0xFFFEE0DD, b""),
    }  # fmt: skip
    traversal = {
        0x00100020: element(0x00100020, "LO", text("../../../etc")),
        0x00081030: element(0x00081030, "LO", text("/absolute/path")),
        0x0008103E: element(0x0008103E, "LO", text("..\\..\\windows")),
        0x00080050: element(0x00080050, "SH", text("..")),
    }
    huge = {
        # Too long for LO's 16-bit length: sent as UT, the VR a sender would pick.
        0x00081030: element(0x00081030, "UT", text("S" * 70000)),
        0x00100010: element(0x00100010, "PN", text("Long^" + "N" * 20000)),
    }
    return [
        _raw_case(dest, "odd_length_person_name", STORED,
                  _set(0x00100010, "PN", b"Odd^Named"), "PN of 9 bytes, no pad"),
        _raw_case(dest, "odd_length_description", STORED,
                  _set(0x0008103E, "LO", b"abc"), "LO of 3 bytes"),
        _raw_case(dest, "odd_length_uid_unpadded", STORED,
                  lambda e, s: e.update({0x00080018: element(0x00080018, "UI",
                                                             s.encode())}),
                  "SOPInstanceUID of odd length without its NUL",
                  sop_uid="1.2.826.0.1.3680043.8.498.12345"),
        _raw_case(dest, "undefined_length_sequence", STORED,
                  _add({0x00081140: sequence(0x00081140, _ref_item("1.2.3"),
                                             _ref_item("1.2.4"))}),
                  "SQ and items of undefined length"),
        _raw_case(dest, "nested_undefined_sequences", STORED,
                  _add({0x00081115: nested}), "SQ in an item in an SQ, undefined"),
        _raw_case(dest, "empty_undefined_sequence", STORED,
                  _add({0x00081140: sequence(0x00081140)}),
                  "SQ of undefined length with no item"),
        _raw_case(dest, "private_tags", STORED, _add(private),
                  "private creator and LO, OB, UN elements"),
        _raw_case(dest, "private_un_undefined_length", STORED, _add(un_sequence),
                  "private UN of undefined length holding a sequence"),
        _raw_case(dest, "uid_over_64_characters", STORED,
                  lambda e, s: None, "86-character SOPInstanceUID",
                  sop_uid=long_uid, meta_uid=generate_uid()),
        _raw_case(dest, "uid_of_1000_characters", STORED, lambda e, s: None,
                  "file name over 255 bytes, cut and hashed", sop_uid=huge_uid,
                  meta_uid=generate_uid()),
        _raw_case(dest, "uid_with_leading_zeros", STORED, lambda e, s: None,
                  "components 0010, 000123, 05", sop_uid=zeros_uid,
                  meta_uid=generate_uid()),
        _raw_case(dest, "path_traversal_values", STORED, _add(traversal),
                  "../, /abs, ..\\ and .. in the names of the tree"),
        _raw_case(dest, "path_traversal_instance_number", STORED,
                  _set(0x00200013, "IS", b"../../1 "), "InstanceNumber '../../1'"),
        _raw_case(dest, "huge_descriptions", STORED, _add(huge),
                  "70 000-character StudyDescription, 20 000-character name"),
        _raw_case(dest, "nul_and_space_padding", STORED,
                  _both(_set(0x00100020, "LO", b"  PADDED\0\0"),
                        _set(0x0020000E, "UI", text("1.2.826.0.1.3680043.8.498.5",
                                                    b"\0") + b"\0\0")),
                  "values padded with NULs and spaces"),
        _raw_case(dest, "latin1_bytes_without_charset", STORED,
                  _set(0x00100010, "PN",
                       text("M\xfcller^J\xfcrgen", encoding="latin-1")),
                  "high bytes, no SpecificCharacterSet"),
        _raw_case(dest, "unknown_character_set", STORED,
                  _both(_add({0x00080005: element(0x00080005, "CS", b"ISO_IR 999")}),
                        _set(0x00100010, "PN", b"\xe9\xe8^\xff\xfe")),
                  "SpecificCharacterSet ISO_IR 999 and high bytes"),
        _raw_case(dest, "non_numeric_numbers", STORED,
                  _both(_set(0x00200011, "IS", b"abc "), _set(0x00200013, "IS",
                                                           b"-5")),
                  "SeriesNumber 'abc', InstanceNumber '-5'"),
        _raw_case(dest, "no_pixel_data", STORED, _drop(0x7FE00010, 0x00280010),
                  "no PixelData, no Rows"),
        _raw_case(dest, "empty_sop_instance_uid", REFUSED,
                  _set(0x00080018, "UI", b""), "SOPInstanceUID empty",
                  meta_uid="1.2.826.0.1.3680043.8.498.999"),
        _raw_case(dest, "no_series_instance_uid", REFUSED, _drop(0x0020000E),
                  "SeriesInstanceUID absent"),
        # The listener never reads pixel data, so it keeps a last element cut
        # short as received; pydicom reads the 64 bytes that are there.
        _raw_case(dest, "last_element_cut_short", STORED, _truncate_pixels,
                  "PixelData (the last element) claims 4096 bytes, 64 follow"),
        _raw_case(dest, "length_past_end_in_header", REFUSED,
                  _set(0x00100010, "PN", b"AB", 0xFFF0),
                  "PatientName claims 65520 bytes"),
        _raw_case(dest, "unterminated_undefined_sequence", REFUSED,
                  _add({0x00081140: element(0x00081140, "SQ", b"", UNDEFINED)
                        + implicit(0xFFFEE000, b"", UNDEFINED)}),
                  "SQ and item of undefined length, no delimiters, data set ends"),
    ]  # fmt: skip


def _pydicom_case(dest: Path, name: str, syntax: str, note: str) -> StoreCase:
    """Write a data set in ``syntax`` with pydicom (it writes these as asked)."""
    ds = Dataset()
    ds.SOPClassUID = SC_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "BAD2", "Syntax^Case", "OT"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = struct.pack("<64H", *range(64))
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "private text")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    path = dest / f"{name}.dcm"
    with lenient():
        ds.save_as(path, enforce_file_format=True)
    return StoreCase(name, path, str(ds.SOPInstanceUID), STORED, note=note)


def _without_meta(dest: Path) -> StoreCase:
    """Write a bare data set, no preamble and no file meta, for storescu -f."""
    sop = generate_uid()
    elements = base_elements(sop, generate_uid())
    path = dest / "missing_file_meta.dcm"
    path.write_bytes(b"".join(elements[t] for t in sorted(elements)))
    return StoreCase("missing_file_meta", path, sop, STORED, sender="storescu",
                     note="bare explicit VR data set, sent by storescu -f")  # fmt: skip


def store_cases(dest: Path) -> list[StoreCase]:
    """Write every data set case into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    return [
        *raw_store_cases(dest),
        _pydicom_case(dest, "explicit_vr_big_endian", ExplicitVRBigEndian,
                      "retired Explicit VR Big Endian"),
        _pydicom_case(dest, "deflated", DeflatedExplicitVRLittleEndian,
                      "Deflated Explicit VR Little Endian"),
        _pydicom_case(dest, "implicit_vr_private", ImplicitVRLittleEndian,
                      "Implicit VR with a private element"),
        _without_meta(dest),
    ]  # fmt: skip


# -- results files for pacsretrieve ---------------------------------------------


def _row(**values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "StudyInstanceUID": {"label": "StudyInstanceUID", "tag": "0020,000d",
                             "value": "1.2.3"},
        "SeriesInstanceUID": {"label": "SeriesInstanceUID", "tag": "0020,000e",
                              "value": "1.2.3.4"},
        "uid": {"label": "uid", "tag": 0, "value": 0},
    }  # fmt: skip
    row.update(values)
    return row


def _doc(*rows: object) -> bytes:
    return json.dumps({"status": "success", "data": list(rows)}).encode()


RESULTS: dict[str, bytes | None] = {
    "truncated_json": _doc(_row())[:-7],
    "empty_file": b"",
    "whitespace_only": b"  \n\t ",
    "json_null": b"null",
    "json_string": b'"success"',
    "json_number": b"42",
    "data_not_a_list": b'{"status": "success", "data": {"0": {}}}',
    "data_missing": b'{"status": "success", "complete": true}',
    "empty_data": _doc(),
    "row_not_an_object": _doc(7),
    "missing_series_uid": json.dumps({"data": [{"StudyInstanceUID": "1.2"}]}).encode(),
    "missing_study_uid": json.dumps({"data": [{"SeriesInstanceUID": "1.2"}]}).encode(),
    "empty_series_uid_value": _doc(_row(SeriesInstanceUID={"value": ""})),
    "uid_not_a_number": _doc(_row(uid={"value": "first"})),
    "uid_negative": _doc(_row(uid={"value": -1})),
    "uid_nan": b'{"data": [{"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.3",'
    b' "uid": NaN}]}',
    "non_utf8_bytes": _doc(_row(PatientName={"value": "X"})).replace(b"X", b"\xe9\xff"),
    "utf16_with_bom": "\ufeff".encode("utf-16-le")
    + json.dumps({"data": [_row()]}).encode("utf-16-le"),
    "nested_100000_deep": b"[" * 100000 + b"]" * 100000,
    "directory_instead_of_file": None,
}  # fmt: skip
# Known product bugs by case name; a case listed here is a strict xfail.
RESULTS_BUGS: dict[str, str] = {}


def results_cases(dest: Path, pacs_port: int) -> list[CliCase]:
    """Write each malformed results file in an input directory of its own."""
    cases = []
    data = dest / "empty-data"
    data.mkdir(parents=True, exist_ok=True)
    for name, content in RESULTS.items():
        inputdir = dest / name / "in"
        inputdir.mkdir(parents=True, exist_ok=True)
        if content is None:
            (inputdir / "success.txt").mkdir()
        else:
            (inputdir / "success.txt").write_bytes(content)
        args = ("--pacs-port", str(pacs_port), "--data-location", str(data),
                "--retries", "0", str(inputdir), str(dest / name / "out"))  # fmt: skip
        cases.append(CliCase(name, "pacsretrieve", args, bug=RESULTS_BUGS.get(name)))
    return cases


# -- option values ---------------------------------------------------------------


def option_cases(dest: Path, pacs_port: int, free_port: int) -> list[CliCase]:
    """Return the bad command lines; each needs no peer (nothing listens)."""
    inputdir, outputdir, data = dest / "opt-in", dest / "opt-out", dest / "opt-data"
    for folder in (inputdir, data):
        folder.mkdir(parents=True, exist_ok=True)
    (inputdir / "success.txt").write_bytes(_doc(_row(), _row(uid={"value": 1})))
    dirs = (str(inputdir), str(outputdir))
    q = ("--pacs-port", str(pacs_port))
    r = ("--pacs-port", str(pacs_port), "--data-location", str(data),
         "--retries", "0")  # fmt: skip
    ld = ("--data-dir", str(dest / "listener-data"))
    lp = ("--port", str(free_port))
    long_aet = "ABCDEFGHIJKLMNOPQ"  # 17 characters
    return [
        CliCase(
            "query_calling_aet_17_chars",
            "pacsquery",
            (*q, "--calling-aet", long_aet, *dirs),
        ),
        CliCase(
            "query_called_aet_17_chars",
            "pacsquery",
            (*q, "--called-aet", long_aet, *dirs),
        ),
        CliCase(
            "retrieve_called_aet_17_chars",
            "pacsretrieve",
            (*r, "--called-aet", long_aet, *dirs),
        ),
        CliCase(
            "retrieve_move_destination_17_chars",
            "pacsretrieve",
            (*r, "--move-destination", long_aet, *dirs),
        ),
        CliCase("listener_aet_17_chars", "pacslistener", (*ld, *lp, "--aet", long_aet)),
        CliCase("listener_aet_backslash", "pacslistener", (*ld, *lp, "--aet", "A\\B")),
        CliCase(
            "retrieve_calling_aet_empty",
            "pacsretrieve",
            (*r, "--calling-aet", " ", *dirs),
        ),
        CliCase("query_port_0", "pacsquery", ("--pacs-port", "0", *dirs)),
        CliCase("query_port_65536", "pacsquery", ("--pacs-port", "65536", *dirs)),
        CliCase("query_port_minus_1", "pacsquery", ("--pacs-port", "-1", *dirs)),
        CliCase(
            "query_port_abc",
            "pacsquery",
            ("--pacs-port", "abc", *dirs),
            note="argparse",
        ),
        CliCase(
            "retrieve_port_65536",
            "pacsretrieve",
            ("--pacs-port", "65536", *r[2:], *dirs),
        ),
        CliCase(
            "retrieve_listen_port_0",
            "pacsretrieve",
            (*r, "--mode", "self", "--listen-port", "0", *dirs),
        ),
        CliCase("listener_port_0", "pacslistener", (*ld, "--port", "0")),
        CliCase("listener_port_65536", "pacslistener", (*ld, "--port", "65536")),
        CliCase("listener_port_minus_1", "pacslistener", (*ld, "--port", "-1")),
        CliCase(
            "listener_port_abc", "pacslistener", (*ld, "--port", "abc"), note="argparse"
        ),
        CliCase(
            "listener_port_abc_from_env",
            "pacslistener",
            ld,
            env={"PACSLISTENER_PORT": "abc"},
            note="argparse",
        ),
        CliCase(
            "query_date_month_13", "pacsquery", (*q, "--study-date", "20231301", *dirs)
        ),
        CliCase(
            "query_date_february_30",
            "pacsquery",
            (*q, "--study-date", "20230230", *dirs),
        ),
        CliCase(
            "query_date_range_reversed",
            "pacsquery",
            (*q, "--study-date", "20231231-20230101", *dirs),
        ),
        CliCase(
            "query_date_not_a_date",
            "pacsquery",
            (*q, "--study-date", "yesterday", *dirs),
        ),
        CliCase("query_time_hour_25", "pacsquery", (*q, "--study-time", "2500", *dirs)),
        CliCase(
            "query_unknown_model", "pacsquery", (*q, "--query-model", "image", *dirs)
        ),
        CliCase(
            "query_negative_dimse_timeout",
            "pacsquery",
            (*q, "--dimse-timeout", "-5", *dirs),
        ),
        CliCase(
            "query_negative_connect_timeout",
            "pacsquery",
            (*q, "--connect-timeout", "-1", *dirs),
        ),
        CliCase(
            "retrieve_unknown_mode", "pacsretrieve", (*r, "--mode", "teleport", *dirs)
        ),
        CliCase(
            "retrieve_series_range_reversed",
            "pacsretrieve",
            (*r, "--series", "1-0", *dirs),
        ),
        CliCase(
            "retrieve_series_token_garbage",
            "pacsretrieve",
            (*r, "--series", "x/y", *dirs),
        ),
        CliCase(
            "retrieve_negative_wait_timeout",
            "pacsretrieve",
            (*r, "--wait-timeout", "-1", *dirs),
        ),
        CliCase(
            "retrieve_negative_deadline",
            "pacsretrieve",
            (*r, "--deadline", "-3", *dirs),
        ),
        CliCase(
            "retrieve_negative_retries", "pacsretrieve", (*r, "--retries", "-1", *dirs)
        ),
        CliCase("retrieve_parallel_0", "pacsretrieve", (*r, "--parallel", "0", *dirs)),
        CliCase(
            "retrieve_negative_dimse_timeout",
            "pacsretrieve",
            (*r, "--dimse-timeout", "-5", *dirs),
        ),
        CliCase(
            "retrieve_negative_connect_timeout",
            "pacsretrieve",
            (*r, "--connect-timeout", "-1", *dirs),
        ),
        CliCase(
            "retrieve_log_level_loud",
            "pacsretrieve",
            (*r, "--log-level", "LOUD", *dirs),
        ),
        CliCase(
            "listener_log_level_loud", "pacslistener", (*ld, *lp, "--log-level", "LOUD")
        ),
        CliCase(
            "listener_data_dir_unwritable",
            "pacslistener",
            (*lp, "--data-dir", "/proc/pacs-data"),
        ),
        CliCase(
            "listener_negative_grace",
            "pacslistener",
            (*ld, *lp, "--grace", "-1"),
        ),
        CliCase(
            "listener_max_pdu_negative", "pacslistener", (*ld, *lp, "--max-pdu", "-1")
        ),
        CliCase(
            "listener_min_free_negative",
            "pacslistener",
            (*ld, *lp, "--min-free-mb", "-5"),
        ),
        CliCase(
            "listener_no_associations",
            "pacslistener",
            (*ld, *lp, "--max-associations", "0"),
        ),
    ]


def main(argv: list[str]) -> int:
    """Write every case under the directory named and a manifest of them."""
    if len(argv) != 1:
        sys.stderr.write("usage: python tests/badinputs.py DEST\n")
        return 2
    dest = Path(argv[0])
    stores = store_cases(dest / "datasets")
    clis = results_cases(dest / "results", 4242) + option_cases(
        dest / "options", 4242, 11113
    )
    manifest = {
        "datasets": [{**asdict(c), "path": str(c.path)} for c in stores],
        "command_lines": [asdict(c) for c in clis],
    }  # fmt: skip
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    sys.stderr.write(f"{len(stores)} data sets, {len(clis)} command lines in {dest}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
