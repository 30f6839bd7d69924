"""pacslistener on a bad day: hostile values, duplicates, crowds, limits."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom import config, dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    SecondaryCaptureImageStorage,
)

from listener import Listener, program
from orthanc import free_port
from pacscommon.index import count_instances, read_entry
from pacscommon.network import keep_responses_for_requests
from tmpfs import mounted_tmpfs


@contextmanager
def lenient() -> Iterator[None]:
    """Let pydicom build and encode values their VR does not allow."""
    saved = (config.settings.reading_validation_mode,
             config.settings.writing_validation_mode)  # fmt: skip
    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        (config.settings.reading_validation_mode,
         config.settings.writing_validation_mode) = saved  # fmt: skip


def instance(series_uid: str | None = None, **values: object) -> Dataset:
    """Return a small Secondary Capture instance; ``values`` override attributes."""
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID = "HARD1"
    ds.PatientName = "Hard^Case"
    ds.StudyDate = "20240102"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(64))
    # Senders do send values their VR does not allow: build them anyway.
    with lenient():
        for keyword, value in values.items():
            if keyword in ds:
                delattr(ds, keyword)
            if value is not None:
                setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def send(port: int, *datasets: Dataset, aet: str = "SENDER") -> list[int]:
    """Store ``datasets`` over one association; return the statuses."""
    ae = AE(ae_title=aet)
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="CHRISLOCAL")
    if assoc.is_established:
        keep_responses_for_requests(assoc)
    assert assoc.is_established
    try:
        with lenient():
            return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def tree(data: Path) -> list[Path]:
    """Return the instance files of the series tree."""
    return sorted(p for p in data.rglob("*.dcm") if ".incoming" not in p.parts)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    with Listener(tmp_path / "data", free_port()) as running:
        yield running


@pytest.mark.parametrize(
    "values",
    [
        {"PatientID": "../../x"},
        {"SeriesDescription": "/etc/passwd"},
        {"StudyDescription": "..", "AccessionNumber": "."},
        {"PatientName": "A\x00B^C", "PatientID": "\x00"},
        {"SeriesDescription": "D" * 600},
        {"PatientName": "Ωμέγα^Ñandú", "SpecificCharacterSet": "ISO_IR 192"},
        {"PatientID": None, "StudyDate": None, "SeriesNumber": None},
        {"SOPInstanceUID": "1.2/../../../../tmp/evil"},
        {"SeriesInstanceUID": "../../escape"},
    ],
)
def test_hostile_values_stay_inside(listener: Listener, values: dict) -> None:
    assert send(listener.port, instance(**values)) == [0]
    (path,) = tree(listener.data_dir)
    assert listener.data_dir.resolve() in path.resolve().parents
    assert len(path.relative_to(listener.data_dir).parts) == 4
    for part in path.relative_to(listener.data_dir).parts:
        assert part not in ("", ".", "..") and len(part.encode()) <= 255
    index = list((listener.data_dir / ".index").iterdir())
    assert len(index) == 1 and index[0].parent == listener.data_dir / ".index"


def test_missing_uids_are_refused_and_the_listener_serves_on(
    listener: Listener,
) -> None:
    bad = instance(SeriesInstanceUID=None)
    statuses = send(listener.port, bad, instance())
    assert statuses[0] & 0xF000 == 0xC000 and statuses[1] == 0
    assert len(tree(listener.data_dir)) == 1
    assert "refused" in listener.log_text()
    assert not any((listener.data_dir / ".incoming").iterdir())


def test_same_instance_at_the_same_moment_leaves_one_file(
    listener: Listener,
) -> None:
    ds = instance()
    statuses: list[int] = []
    senders = [
        threading.Thread(target=lambda: statuses.extend(send(listener.port, ds)))
        for _ in range(4)
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join(60)
    assert statuses == [0, 0, 0, 0]
    assert len(tree(listener.data_dir)) == 1
    assert len(list((listener.data_dir / ".index").iterdir())) == 1


def test_same_sop_uid_in_two_series_leaves_two_files(listener: Listener) -> None:
    sop = generate_uid()
    a, b = instance(SOPInstanceUID=sop), instance(SOPInstanceUID=sop)
    assert send(listener.port, a, b) == [0, 0]
    assert len(tree(listener.data_dir)) == 2


def test_twenty_senders_at_once_lose_nothing(listener: Listener) -> None:
    series = [generate_uid() for _ in range(4)]
    batches = [
        [instance(series[n % 4], InstanceNumber=k) for k in range(10)]
        for n in range(20)
    ]
    results: list[list[int]] = []
    lock = threading.Lock()

    def sender(batch: list[Dataset], n: int) -> None:
        statuses = send(listener.port, *batch, aet=f"SENDER{n}")
        with lock:
            results.append(statuses)

    threads = [
        threading.Thread(target=sender, args=(b, n)) for n, b in enumerate(batches)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(s for r in results for s in r) == [0] * 200
    for uid in series:
        entry = read_entry(listener.data_dir, uid)
        assert entry is not None
        assert count_instances(listener.data_dir / entry.path) == 50


def test_only_listed_calling_aets_are_accepted(tmp_path: Path) -> None:
    port = free_port()
    with Listener(tmp_path / "d", port, "CHRISLOCAL", "--allowed-calling-aets",
                  "ORTHANC,OTHER"):  # fmt: skip
        ae = AE(ae_title="STRANGER")
        ae.add_requested_context(SecondaryCaptureImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title="CHRISLOCAL")
        if assoc.is_established:
            keep_responses_for_requests(assoc)
        assert assoc.is_rejected
        # PS3.8 9.3.4: rejected-permanent, service user, calling AE not recognized
        rj = assoc.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (1, 1, 3)
        assert send(port, instance(), aet="OTHER") == [0]


def test_below_the_free_space_reserve_nothing_is_written(tmp_path: Path) -> None:
    port = free_port()
    with Listener(tmp_path / "d", port, "CHRISLOCAL", "--min-free-mb",
                  str(1 << 40)) as running:  # fmt: skip
        assert send(port, instance()) == [0xA700]
        assert tree(running.data_dir) == []
        assert not any((running.data_dir / ".incoming").iterdir())


def test_prefix_by_calling_aet(tmp_path: Path) -> None:
    port = free_port()
    with Listener(
        tmp_path / "d", port, "CHRISLOCAL", "--prefix-calling-aet"
    ) as running:
        assert send(port, instance(), aet="MY PACS") == [0]
        (path,) = tree(running.data_dir)
        assert path.relative_to(running.data_dir).parts[0] == "MY_PACS"


def test_sigterm_lets_the_association_in_flight_finish(tmp_path: Path) -> None:
    port = free_port()
    running = Listener(tmp_path / "d", port, "CHRISLOCAL", "--grace", "30").start()
    ae = AE(ae_title="SLOW")
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="CHRISLOCAL")
    if assoc.is_established:
        keep_responses_for_requests(assoc)
    assert assoc.is_established
    assert int(assoc.send_c_store(instance()).Status) == 0
    assert running.process is not None
    running.process.terminate()
    time.sleep(0.5)  # let the signal land while the association is open
    assert int(assoc.send_c_store(instance()).Status) == 0
    assoc.release()
    assert running.stop() == 0
    assert len(tree(running.data_dir)) == 2


def test_usage_and_prune(listener: Listener) -> None:
    assert send(listener.port, instance(), instance()) == [0, 0]
    run = [program("pacslistener"), "--data-dir", str(listener.data_dir)]
    done = subprocess.run([*run, "--usage"], capture_output=True, text=True, check=True)
    use = json.loads(done.stdout)
    assert use["series"] == 2 and use["instances"] == 2 and use["bytes"] > 0
    # Nothing is a day old: nothing goes.
    subprocess.run([*run, "--prune-days", "1"], check=True, capture_output=True)
    assert len(tree(listener.data_dir)) == 2
    # Everything is older than a millisecond.
    time.sleep(0.2)
    subprocess.run([*run, "--prune-days", "0.000001"], check=True, capture_output=True)
    assert tree(listener.data_dir) == []
    assert not list((listener.data_dir / ".index").iterdir())
    # The listener keeps writing afterwards.
    assert send(listener.port, instance()) == [0]
    assert len(tree(listener.data_dir)) == 1


def test_stored_file_reads_back(listener: Listener) -> None:
    ds = instance()
    assert send(listener.port, ds) == [0]
    (path,) = tree(listener.data_dir)
    back = dcmread(path)
    assert back.SOPInstanceUID == ds.SOPInstanceUID
    assert back.PixelData == ds.PixelData
    assert isinstance(back.file_meta, FileMetaDataset)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 30 MB tmpfs, mounted for the test (needs root)."""
    with mounted_tmpfs(tmp_path / "small-disk", "30m") as mount:
        yield mount


def test_disk_full_mid_instance_loses_only_that_instance(
    small_disk: Path, tmp_path: Path
) -> None:
    from test_listener import big_instance

    big = big_instance(tmp_path / "big.dcm", 50)
    data = small_disk / "data"
    with Listener(data, free_port(), "CHRISLOCAL", "--min-free-mb", "0") as running:
        done = subprocess.run(
            [
                "/usr/bin/storescu",
                "-v",
                "-aec",
                "CHRISLOCAL",
                "127.0.0.1",
                str(running.port),
                str(big),
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Refused: OutOfResources" in done.stderr, done.stderr
        assert tree(data) == []
        assert not any((data / ".incoming").iterdir())
        # Space is back once the big one is gone: the listener carries on.
        assert send(running.port, instance()) == [0]
        assert len(tree(data)) == 1
    assert "No space left on device" in running.log_text()


def test_malformed_data_set_is_refused_and_serving_goes_on(
    listener: Listener, tmp_path: Path
) -> None:
    from pynetdicom import _config

    # A data set whose first element claims more bytes than follow.
    good = instance()
    path = tmp_path / "bad.dcm"
    good.save_as(path, enforce_file_format=True)
    raw = bytearray(path.read_bytes())
    offset = raw.index(b"\x08\x00\x16\x00")  # (0008,0016) SOPClassUID
    raw[offset + 6 : offset + 8] = (0xFFF0).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    ae = AE(ae_title="BROKEN")
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="CHRISLOCAL")
    if assoc.is_established:
        keep_responses_for_requests(assoc)
    assert assoc.is_established
    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        status = assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved
        assoc.release()
    assert int(status.Status) & 0xF000 in (0xA000, 0xC000)
    assert tree(listener.data_dir) == []
    assert send(listener.port, instance()) == [0]


def test_no_patient_identifiers_above_debug(listener: Listener) -> None:
    ds = instance(PatientID="SECRETID77", PatientName="Secret^Person")
    assert send(listener.port, ds) == [0]
    log = listener.log_text()
    assert "association from SENDER" in log
    for secret in ("SECRETID77", "Secret", "Person"):
        assert secret not in log


def sparse_instance(path: Path, size: int) -> Path:
    """Write an instance whose PixelData is ``size`` bytes of (sparse) zeros."""
    ds = instance()
    del ds.PixelData
    ds.Rows = ds.Columns = int((size // 2) ** 0.5)
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.save_as(path, enforce_file_format=True)
    length = 2 * ds.Rows * ds.Columns
    with open(path, "ab") as f:
        # (7FE0,0010) OW, explicit VR little endian: tag, VR, reserved, length
        f.write(b"\xe0\x7f\x10\x00OW\x00\x00" + length.to_bytes(4, "little"))
        f.truncate(f.tell() + length)
    return path


def peak_rss_mb(running: Listener) -> float:
    """Return the listener process's peak resident memory, in MB."""
    assert running.process is not None
    status = Path(f"/proc/{running.process.pid}/status").read_text()
    line = next(ln for ln in status.splitlines() if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_one_gigabyte_instance_in_flat_memory(
    listener: Listener, tmp_path: Path
) -> None:
    big = sparse_instance(tmp_path / "big.dcm", 1 << 30)
    done = subprocess.run(
        [
            "/usr/bin/storescu",
            "-aec",
            "CHRISLOCAL",
            "127.0.0.1",
            str(listener.port),
            str(big),
        ],  # fmt: skip
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0
    (path,) = tree(listener.data_dir)
    assert path.stat().st_size > 10**9
    assert abs(path.stat().st_size - big.stat().st_size) < 1024
    assert peak_rss_mb(listener) < 200


def test_five_thousand_instances_in_flat_memory(
    listener: Listener, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    series = generate_uid()
    for n in range(5000):
        ds = instance(series, InstanceNumber=n + 1)
        ds.save_as(folder / f"{n:05d}.dcm", enforce_file_format=True)
    done = subprocess.run(
        [
            "/usr/bin/storescu",
            "+sd",
            "-aec",
            "CHRISLOCAL",
            "127.0.0.1",
            str(listener.port),
            str(folder),
        ],  # fmt: skip
        capture_output=True,
        timeout=600,
        env={"TCP_NODELAY": "1"},
    )
    assert done.returncode == 0
    entry = read_entry(listener.data_dir, series)
    assert entry is not None
    assert count_instances(listener.data_dir / entry.path) == 5000
    assert peak_rss_mb(listener) < 200
