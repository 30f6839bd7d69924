"""pacsretrieve's instance notes: each file read once, and read again if it changed."""

import hashlib
import os
import threading
import time
from pathlib import Path

import pydicom.data
import pytest

from pacscommon.index import INCOMING_DIR, SeriesEntry, create_entry
from pacsretrieve import instances
from pacsretrieve.instances import ArrivalWatcher, InstanceNotes


@pytest.fixture
def ct_file() -> Path:
    return Path(pydicom.data.get_testdata_file("CT_small.dcm"))


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every file the notes read whole."""
    reads: list[Path] = []
    real = instances._read_whole

    def read_whole(path: Path | str) -> tuple[str, bytes, bool]:
        reads.append(Path(path))
        return real(path)

    monkeypatch.setattr(instances, "_read_whole", read_whole)
    return reads


def _nice_of(thread_id: int | None) -> int:
    """Return a thread's nice value, from /proc (field 19 of its stat line)."""
    stat = Path(f"/proc/self/task/{thread_id}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_a_hard_link_is_described_without_reading_it_again(
    tmp_path: Path, ct_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _counting_reads(monkeypatch)
    source = tmp_path / "data" / "0001-a.dcm"
    source.parent.mkdir()
    source.write_bytes(ct_file.read_bytes())
    notes = InstanceNotes()
    notes.note(source)
    out = tmp_path / "out" / "series"
    out.mkdir(parents=True)
    os.link(source, out / source.name)

    described = notes.describe(out, tmp_path / "out")

    assert reads == [source]
    assert described == [
        {
            "file": "series/0001-a.dcm",
            "SOPInstanceUID": pydicom.dcmread(ct_file).SOPInstanceUID,
            "sha256": hashlib.sha256(ct_file.read_bytes()).hexdigest(),
        }
    ]


def test_a_replaced_or_copied_file_is_read_again(
    tmp_path: Path, ct_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _counting_reads(monkeypatch)
    path = tmp_path / "0001-a.dcm"
    path.write_bytes(ct_file.read_bytes())
    notes = InstanceNotes()
    first = notes.note(path)
    changed = bytearray(ct_file.read_bytes())
    changed[-1] ^= 0xFF
    replacement = tmp_path / "new"
    replacement.write_bytes(changed)
    os.replace(replacement, path)

    again = notes.note(path)

    assert len(reads) == 2
    assert again[0] == hashlib.sha256(changed).hexdigest() != first[0]
    assert again[1] == first[1]


def test_the_watcher_notes_files_as_they_arrive(
    tmp_path: Path, ct_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _counting_reads(monkeypatch)
    data = tmp_path / "data"
    (data / INCOMING_DIR).mkdir(parents=True)
    create_entry(data, SeriesEntry("1.2.3", "1.2", "p/s/00001-x"))
    folder = data / "p" / "s" / "00001-x"
    folder.mkdir(parents=True)
    notes = InstanceNotes()
    arrived = threading.Event()

    with ArrivalWatcher(notes, data, ["1.2.3", "9.9.9"]) as watcher:
        for number in range(3):
            (folder / f"000{number}-a.dcm").write_bytes(ct_file.read_bytes())
        deadline = time.monotonic() + 10
        while len(reads) < 3 and time.monotonic() < deadline:
            arrived.wait(0.01)
        nice = _nice_of(watcher._thread.native_id)

    assert sorted(Path(p).name for p in reads) == [
        "0000-a.dcm",
        "0001-a.dcm",
        "0002-a.dcm",
    ]
    # The watcher yields the CPU to the transfer: its thread alone is niced.
    own = _nice_of(threading.get_native_id())
    assert nice == min(own + instances.WATCHER_NICE, instances.MAX_NICE)
    assert nice > own or own == instances.MAX_NICE
    notes.describe(folder, data)
    assert len(reads) == 3


def test_the_watcher_outlives_a_bad_index_entry(
    tmp_path: Path, ct_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _counting_reads(monkeypatch)
    data = tmp_path / "data"
    (data / ".index").mkdir(parents=True)
    (data / ".index" / "1.2.3.json").write_text("{not json")
    (data / INCOMING_DIR).mkdir()
    create_entry(data, SeriesEntry("4.5.6", "4.5", "p/s/00002-y"))
    folder = data / "p" / "s" / "00002-y"
    folder.mkdir(parents=True)
    (folder / "0001-b.dcm").write_bytes(ct_file.read_bytes())
    waited = threading.Event()

    with ArrivalWatcher(InstanceNotes(), data, ["1.2.3", "4.5.6"]) as watcher:
        deadline = time.monotonic() + 10
        while not reads and time.monotonic() < deadline:
            waited.wait(0.01)
        alive = watcher._thread.is_alive()

    assert alive
    assert reads == [folder / "0001-b.dcm"]
