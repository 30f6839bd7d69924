"""The storage engine on bytes no sender should send."""

import os
import stat
from pathlib import Path

import pytest

from pacscommon.storage import STORE_CANNOT_UNDERSTAND, InstanceRejected, StorageEngine


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff" * 8,  # found by the fuzzer: pydicom raised struct.error
        b"\x02\x00\x10\x00UI\xff\xff",
        b"\x08\x00\x16\x00" + b"\xff" * 3,
    ],
)
def test_unreadable_data_sets_are_rejected(tmp_path: Path, body: bytes) -> None:
    engine = StorageEngine(tmp_path / "data")
    engine.prepare()
    path = engine.incoming / "received.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + body)
    with pytest.raises(InstanceRejected) as caught:
        engine.store(path)
    assert caught.value.status == STORE_CANNOT_UNDERSTAND
    stored = [
        p for p in (tmp_path / "data").rglob("*.dcm") if ".incoming" not in p.parts
    ]
    assert stored == []
    assert not list((tmp_path / "data" / ".index").iterdir())


def test_files_are_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    """Readers in other containers run as other users: no private files."""
    from pacscommon.files import create_temp
    from pacscommon.index import SeriesEntry, create_entry, entry_path

    engine = StorageEngine(tmp_path / "data")
    engine.prepare()
    old = os.umask(0o022)
    try:
        fd, name = create_temp(engine.incoming, suffix=".dcm")
        os.close(fd)
        create_entry(engine.data_dir, SeriesEntry("1.2.3", "1.2", "a/b/c"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o644
    index_file = entry_path(engine.data_dir, "1.2.3")
    assert stat.S_IMODE(index_file.stat().st_mode) == 0o644


def _received(engine: StorageEngine, number: int) -> Path:
    """Write a Part-10 file of instance ``number`` of one series into .incoming."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.9.7156.3.{number}"
    ds.PatientID = "P1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7156.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.7156.2"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = engine.incoming / f"received-{number}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_series_folder_removed_while_running_is_made_again(tmp_path: Path) -> None:
    from pacscommon.index import entry_path

    engine = StorageEngine(tmp_path / "data")
    engine.prepare()
    first = engine.store(_received(engine, 1))
    folder = Path(first.path).parent
    # The folder goes (a clean-up); its index entry stays: the same folder.
    for item in folder.iterdir():
        item.unlink()
    folder.rmdir()
    second = engine.store(_received(engine, 2))
    assert Path(second.path).parent == folder and Path(second.path).is_file()
    # Folder and entry go: the series is new again, its folder and entry made.
    os.remove(Path(second.path))
    folder.rmdir()
    entry_path(tmp_path / "data", second.SeriesInstanceUID).unlink()
    third = engine.store(_received(engine, 3))
    assert Path(third.path).is_file() and Path(third.path).parent == folder
    assert entry_path(tmp_path / "data", third.SeriesInstanceUID).is_file()
    assert not any(engine.incoming.iterdir())
