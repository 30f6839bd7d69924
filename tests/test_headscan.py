"""The head scan gives the layout the same texts as parsing the file, or none."""

import struct
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from pacscommon.headscan import (
    SOP_INSTANCE_UID,
    DataSetHead,
    part10_head,
    scan_layout,
)
from pacscommon.receiver import HEAD_BYTES
from pacscommon.storage import InstanceRejected, read_layout_attributes


def _packaged_files() -> list[Path]:
    """Every file pydicom and pydicom-data ship, found on disk (never fetched)."""
    import data_store

    folders = [
        Path(pydicom.data.__file__).parent / "test_files",
        Path(data_store.__file__).parent / "data",
    ]
    return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file())


def _head_of(path: Path, limit: int = HEAD_BYTES) -> DataSetHead | None:
    """Return a Part-10 file's data set head as the receive loop keeps it."""
    raw = path.read_bytes()
    if raw[128:132] != b"DICM" or raw[132:136] != b"\x02\x00\x00\x00":
        return None
    (meta_length,) = struct.unpack_from("<I", raw, 140)
    body = raw[144 + meta_length :]
    try:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        transfer_syntax = str(meta.TransferSyntaxUID)
    except Exception:  # noqa: BLE001 - a file pydicom cannot read is skipped
        return None
    return DataSetHead(body[:limit], transfer_syntax, whole=len(body) <= limit)


def _expected(path: Path) -> dict[str, str | None] | None:
    """Return what parsing the file gives the layout, None if it cannot."""
    try:
        return read_layout_attributes(path)
    except InstanceRejected:
        return None


def test_every_packaged_file_scans_as_pydicom_reads_it() -> None:
    scanned = compared = 0
    for path in _packaged_files():
        head = _head_of(path)
        expected = _expected(path)
        if head is None or expected is None:
            continue
        compared += 1
        got = scan_layout(head)
        if got is not None:
            scanned += 1
            assert got == expected, path.name
    # The scan must answer for most real files, or it spares nothing.
    assert compared > 100
    assert scanned > compared * 0.6, (scanned, compared)


def test_a_short_head_scans_or_declines_but_never_differs() -> None:
    for path in _packaged_files()[:150]:
        for limit in (0, 7, 64, 300, 1000):
            head = _head_of(path, limit)
            expected = _expected(path)
            if head is None or expected is None:
                continue
            got = scan_layout(head)
            assert got is None or got == expected, (path.name, limit)


def test_the_sop_instance_uid_alone_scans_as_pydicom_reads_it() -> None:
    # The walk that stops at SOPInstanceUID answers at least as often as the
    # whole layout's, and the same text; on short heads, never another one.
    alone = whole = 0
    for path in _packaged_files():
        for limit in (HEAD_BYTES, 300, 100):
            head = _head_of(path, limit)
            expected = _expected(path)
            if head is None or expected is None:
                continue
            got = scan_layout(head, SOP_INSTANCE_UID)
            if got is not None:
                assert got == {"SOPInstanceUID": expected["SOPInstanceUID"]}
                alone += limit == HEAD_BYTES
            whole += limit == HEAD_BYTES and scan_layout(head) is not None
    assert alone > whole > 100, (alone, whole)


def _written(tmp_path: Path, syntax: str, **values: object) -> Path:
    """Write a data set with the layout's attributes set to ``values``."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
@pytest.mark.parametrize(
    "values",
    [
        {"PatientName": "DOE^JOHN", "SeriesNumber": "7", "InstanceNumber": "12"},
        {"PatientName": "DOE^JOHN^^^", "StudyDescription": "  CT HEAD "},
        {"PatientName": "A^B=C^D=", "SeriesDescription": ""},
        {"PatientName": "", "PatientID": "", "InstanceNumber": "005"},
        {"PatientName": " DOE", "SeriesNumber": "+3"},
        {"PatientName": "DOE^JOHN", "SpecificCharacterSet": "ISO_IR 192"},
        {"PatientName": "Buc^J\u00e9r\u00f4me", "SpecificCharacterSet": "ISO_IR 100"},
        {"StudyDescription": "A\\B", "AccessionNumber": "X1"},
        {"SeriesDescription": "x" * 64, "StudyDate": "20200101"},
    ],
)
def test_edge_values_scan_as_pydicom_reads_them(
    tmp_path: Path, syntax: str, values: dict[str, object]
) -> None:
    path = _written(tmp_path, syntax, **values)
    head = _head_of(path)
    assert head is not None
    got = scan_layout(head)
    assert got is None or got == read_layout_attributes(path)


def test_plain_values_are_scanned_not_left_to_pydicom(tmp_path: Path) -> None:
    path = _written(
        tmp_path,
        ExplicitVRLittleEndian,
        PatientName="DOE^JOHN",
        SeriesNumber="7",
        SeriesDescription="AX T1",
    )
    head = _head_of(path)
    assert head is not None
    got = scan_layout(head)
    assert got is not None
    assert got["SeriesDescription"] == "AX T1"
    assert got["SeriesNumber"] == "7"
    assert got == read_layout_attributes(path)


def test_big_endian_and_non_ascii_are_left_to_pydicom(tmp_path: Path) -> None:
    big = _written(tmp_path, ExplicitVRBigEndian, PatientName="DOE^JOHN")
    latin = _written(
        tmp_path,
        ExplicitVRLittleEndian,
        SpecificCharacterSet="ISO_IR 100",
        PatientName="Buc^J\u00e9r\u00f4me",
    )
    for path in (big, latin):
        head = _head_of(path)
        assert head is not None
        assert scan_layout(head) is None


def test_part10_head_finds_the_data_set_and_its_transfer_syntax() -> None:
    found = 0
    for path in _packaged_files():
        expected = _head_of(path, limit=1 << 30)
        raw = path.read_bytes()
        got = part10_head(raw, whole=True)
        if expected is None:
            continue
        assert got is not None, path.name
        assert (got.data, got.transfer_syntax) == (
            expected.data,
            expected.transfer_syntax,
        ), path.name
        found += 1
    assert found > 100
    assert part10_head(b"\x00" * 132, whole=True) is None
    assert (
        part10_head(b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00", True)
        is None
    )
