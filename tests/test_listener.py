"""pacslistener driven from outside by real senders on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from corpus import Corpus, pixel_data_bytes
from listener import Listener, program
from orthanc import free_port
from pacscommon.index import count_instances, read_entry

STORESCU = "/usr/bin/storescu"
ECHOSCU = "/usr/bin/echoscu"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    """A fresh listener on a free port with an empty data directory."""
    with Listener(tmp_path / "data", free_port()) as running:
        yield running


# storescu proposes the uncompressed syntaxes unless told which compressed one.
PROPOSE = {
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}


def storescu(listener: Listener, *files: Path, aet: str = "STORESCU") -> int:
    """Send files with DCMTK's storescu, one run per transfer syntax.

    Return the highest exit code of the runs.
    """
    groups: dict[str, list[Path]] = {}
    for path in files:
        syntax = str(dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        groups.setdefault(PROPOSE.get(syntax, "-x="), []).append(path)
    code = 0
    for flag, paths in groups.items():
        done = subprocess.run(
            [
                STORESCU,
                flag,
                "-aet",
                aet,
                "-aec",
                listener.aet,
                "127.0.0.1",
                str(listener.port),
                *map(str, paths),
            ],  # fmt: skip
            capture_output=True,
            timeout=120,
        )
        code = max(code, done.returncode)
    return code


def dcm_files(data: Path) -> list[Path]:
    """Return the .dcm files of the series tree (not .incoming or .index)."""
    return sorted(p for p in data.rglob("*.dcm") if ".incoming" not in p.parts)


def test_stores_the_corpus_in_the_series_tree(
    listener: Listener, corpus: Corpus
) -> None:
    assert storescu(listener, *(c.path for c in corpus)) == 0
    files = dcm_files(listener.data_dir)
    assert len(files) == len(corpus)
    by_uid = {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}
    for item in corpus:
        path = by_uid[item.SOPInstanceUID]
        assert pixel_data_bytes(path) == pixel_data_bytes(item.path)
        # Part 10: preamble, DICM, file meta with the accepted transfer syntax.
        assert path.read_bytes()[128:132] == b"DICM"
        meta = dcmread(path, stop_before_pixels=True).file_meta
        if item.TransferSyntaxUID in PROPOSE:
            assert meta.TransferSyntaxUID == item.TransferSyntaxUID
        else:  # storescu may send an uncompressed file in another such syntax
            assert not meta.TransferSyntaxUID.is_compressed
        assert path.name.endswith(f"-{item.SOPInstanceUID}.dcm")


def test_index_names_each_series_folder(listener: Listener, corpus: Corpus) -> None:
    assert storescu(listener, *(c.path for c in corpus)) == 0
    for uid, items in corpus.series().items():
        entry = read_entry(listener.data_dir, uid)
        assert entry is not None
        assert entry.StudyInstanceUID == items[0].StudyInstanceUID
        assert count_instances(listener.data_dir / entry.path) == len(items)
        raw = json.loads((listener.data_dir / ".index" / f"{uid}.json").read_text())
        assert raw["path"] == entry.path


def test_folder_names_follow_the_layout(listener: Listener, corpus: Corpus) -> None:
    item = next(c for c in corpus if c.Modality == "CT")
    assert storescu(listener, item.path) == 0
    ds = dcmread(item.path, stop_before_pixels=True)
    (path,) = dcm_files(listener.data_dir)
    rel = path.relative_to(listener.data_dir).parts
    name = str(ds.PatientName).replace("^", "_")
    assert rel[0] == f"{ds.PatientID}-{name}-{ds.get('PatientBirthDate', '')}"
    assert rel[1].endswith(f"-{ds.StudyDate}")
    assert rel[2].startswith(f"{int(ds.SeriesNumber):05d}-")
    assert rel[3] == f"{int(ds.InstanceNumber):04d}-{ds.SOPInstanceUID}.dcm"


def test_same_instance_twice_leaves_one_file(
    listener: Listener, corpus: Corpus
) -> None:
    item = next(iter(corpus))
    assert storescu(listener, item.path, item.path) == 0
    assert storescu(listener, item.path) == 0
    assert len(dcm_files(listener.data_dir)) == 1
    assert "received again" in listener.log_text()


def test_c_echo(listener: Listener) -> None:
    done = subprocess.run(
        [ECHOSCU, "-aec", listener.aet, "127.0.0.1", str(listener.port)],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0


def test_sigterm_exits_zero(tmp_path: Path) -> None:
    running = Listener(tmp_path / "data", free_port()).start()
    assert running.stop() == 0


def test_port_taken_exits_one(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [
                program("pacslistener"),
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "d"),
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(port) in errors[0]


def test_unwritable_data_dir_exits_two(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = subprocess.run(
        [
            program("pacslistener"),
            "--port",
            str(free_port()),
            "--data-dir",
            str(blocker / "data"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: data directory")


def test_environment_configures_the_listener(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PACSLISTENER_PORT": str(port),
           "PACSLISTENER_DATA_DIR": str(tmp_path / "env-data"),
           "PACSLISTENER_BIND": "127.0.0.1"}  # fmt: skip
    process = subprocess.Popen([program("pacslistener")], env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = subprocess.run(
                [ECHOSCU, "-aec", "CHRISLOCAL", "127.0.0.1", str(port)],
                capture_output=True,
                timeout=30,
            )
            if done.returncode == 0:
                break
            time.sleep(0.1)  # readiness poll
        assert done.returncode == 0
        assert (tmp_path / "env-data" / ".index").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def big_instance(path: Path, megabytes: int) -> Path:
    """Write an uncompressed instance of about ``megabytes`` MB."""
    side = int((megabytes * 1024 * 1024 / 2) ** 0.5)
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "BIG"
    ds.PatientName = "Big^Instance"
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.zeros((side, side), dtype=np.uint16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def test_sender_killed_mid_instance_leaves_nothing(
    listener: Listener, tmp_path: Path
) -> None:
    big = big_instance(tmp_path / "big.dcm", 400)
    incoming = listener.data_dir / ".incoming"
    # A slow sender: a small PDU keeps the transfer going long enough to kill.
    sender = subprocess.Popen(
        [
            STORESCU,
            "--max-send-pdu",
            "4096",
            "-aec",
            listener.aet,
            "127.0.0.1",
            str(listener.port),
            str(big),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            partial = [p for p in incoming.iterdir() if p.stat().st_size > 1 << 20]
            if partial or sender.poll() is not None:
                break
            time.sleep(0.02)  # poll for the partial file to appear
        assert sender.poll() is None, "the sender finished before it was killed"
        assert partial
    finally:
        sender.kill()
        sender.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(incoming.iterdir()):
        time.sleep(0.05)  # poll for the listener to clean up
    assert not any(incoming.iterdir())
    assert dcm_files(listener.data_dir) == []
    # The listener keeps serving.
    small = big_instance(tmp_path / "small.dcm", 1)
    assert storescu(listener, small) == 0
    assert len(dcm_files(listener.data_dir)) == 1
