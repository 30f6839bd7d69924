"""Load: 20 senders and two pulls at once into one listener; nothing lost.

Ten series of small instances, each sent by two senders at the same moment
(one DCMTK storescu, one pynetdicom), 100 instances a sender, the last ten of
one overlapping the first ten of the other: 2000 C-STOREs, 1900 distinct
instances. Meanwhile two pacsretrieve runs move the whole seed corpus from the
session's Orthanc to the same listener. Afterwards each instance is on disk
exactly once with its bytes unchanged, and the index agrees with the tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    SecondaryCaptureImageStorage,
)
from reliability import (
    Background,
    check_output_marked,
    check_volume,
    retrieve_command,
    write_results,
)

from corpus import Corpus, pixel_data_bytes
from listener import Listener
from orthanc import LISTENER_AET, OrthancServer
from pacscommon.index import INDEX_DIR, count_instances
from pacscommon.network import NODELAY_HANDLERS, keep_responses_for_requests

SERIES = 10
PER_SENDER = 100
OVERLAP = 10


def small_instance(series: str, number: int) -> Dataset:
    """Return an 8x8 Secondary Capture instance."""
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    ds.SeriesInstanceUID = series
    ds.PatientID, ds.PatientName, ds.StudyDate = "LOAD1", "Load^Test", "20240301"
    ds.SeriesNumber, ds.InstanceNumber, ds.Modality = 1, number, "OT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes((number + k) % 256 for k in range(64))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def data_set_sha256(path: Path) -> str:
    """Return the SHA-256 of a Part-10 file's bytes after its file meta."""
    raw = path.read_bytes()
    assert raw[128:132] == b"DICM" and raw[132:136] == b"\x02\x00\x00\x00"
    meta_length = int.from_bytes(raw[140:144], "little")
    return hashlib.sha256(raw[144 + meta_length :]).hexdigest()


def build_senders(root: Path) -> tuple[list[list[Path]], dict[str, dict[str, str]]]:
    """Write each sender's files; return them and, per series, SOP UID to hash."""
    senders: list[list[Path]] = []
    expected: dict[str, dict[str, str]] = {}
    for s in range(SERIES):
        uid = generate_uid()
        expected[uid] = {}
        files = []
        for n in range(2 * PER_SENDER - OVERLAP):
            ds = small_instance(uid, n + 1)
            path = root / f"s{s:02d}-{n:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            expected[uid][str(ds.SOPInstanceUID)] = data_set_sha256(path)
            files.append(path)
        senders.append(files[:PER_SENDER])
        senders.append(files[PER_SENDER - OVERLAP :])
    return senders, expected


def send_storescu(port: int, files: list[Path], folder: Path, aet: str) -> int:
    """Send files with DCMTK's storescu; return its exit code."""
    folder.mkdir()
    for path in files:
        os.link(path, folder / path.name)
    done = subprocess.run(
        ["/usr/bin/storescu", "+sd", "-aet", aet, "-aec", LISTENER_AET,
         "127.0.0.1", str(port), str(folder)],
        capture_output=True,
        timeout=180,
        env={"TCP_NODELAY": "1"},
    )  # fmt: skip
    return done.returncode


def send_pynetdicom(port: int, files: list[Path], aet: str) -> list[int]:
    """Send files with pynetdicom over one association; return the statuses."""
    ae = AE(ae_title=aet)
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=LISTENER_AET,
                         evt_handlers=list(NODELAY_HANDLERS))  # fmt: skip
    if assoc.is_established:
        keep_responses_for_requests(assoc)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(path).Status) for path in files]
    finally:
        assoc.release()


@pytest.fixture
def listener(tmp_path: Path, listener_port: int) -> Iterator[Listener]:
    """The listener the session's Orthanc knows as CHRISLOCAL."""
    with Listener(tmp_path / "data", listener_port) as running:
        yield running


def all_rows(orthanc: OrthancServer) -> list[dict[str, str]]:
    """Return a results row for every series the session's Orthanc holds."""
    return [
        {"StudyInstanceUID": t["StudyInstanceUID"], "SeriesInstanceUID": uid,
         "NumberOfSeriesRelatedInstances": str(t["NumberOfSeriesRelatedInstances"])}
        for uid, t in sorted(orthanc.series_truth().items())
    ]  # fmt: skip


def test_twenty_senders_and_two_pulls_at_once(
    orthanc: OrthancServer,
    corpus: Corpus,
    listener: Listener,
    tmp_path: Path,
    record_property: Any,
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    senders, expected = build_senders(files)
    write_results(tmp_path / "in", all_rows(orthanc))
    pulls = [
        Background(
            retrieve_command(orthanc.dicom_port, listener.data_dir,
                             "--wait-timeout", "60", "--parallel", "2",
                             str(tmp_path / "in"), str(tmp_path / f"out{k}")),
            tmp_path / f"out{k}",
        )
        for k in range(2)
    ]  # fmt: skip
    outcomes: dict[int, Any] = {}

    def sender(n: int) -> None:
        aet = f"LOAD{n:02d}"
        if n % 2 == 0:
            outcomes[n] = send_storescu(listener.port, senders[n], tmp_path / aet, aet)
        else:
            outcomes[n] = send_pynetdicom(listener.port, senders[n], aet)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(2 * SERIES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    runs = [p.finish() for p in pulls]

    # Every sender and both pulls succeeded.
    assert [outcomes[n] for n in range(0, 2 * SERIES, 2)] == [0] * SERIES
    for n in range(1, 2 * SERIES, 2):
        assert outcomes[n] == [0] * len(senders[n])
    for run in runs:
        assert run.code == 0, run.stderr
        assert check_output_marked(run)["complete"] is True

    # Each instance on disk once, its bytes as sent.
    on_disk = check_volume(listener.data_dir)
    sent = {sop: h for by_sop in expected.values() for sop, h in by_sop.items()}
    originals = {c.SOPInstanceUID: c for c in corpus}
    assert set(on_disk) == set(sent) | set(originals)
    for sop, digest in sent.items():
        assert data_set_sha256(on_disk[sop]) == digest
    for sop, original in originals.items():
        received = pixel_data_bytes(on_disk[sop])
        assert hashlib.sha256(received).hexdigest() == original.pixel_sha256

    # The index agrees with the tree.
    counts = {uid: len(by_sop) for uid, by_sop in expected.items()}
    counts.update({uid: len(items) for uid, items in corpus.series().items()})
    entries = {}
    for path in (listener.data_dir / INDEX_DIR).iterdir():
        entry = json.loads(path.read_text())
        entries[entry["SeriesInstanceUID"]] = entry["path"]
    assert set(entries) == set(counts)
    for uid, folder in entries.items():
        assert count_instances(listener.data_dir / folder) == counts[uid]
    folders = {p.parent.relative_to(listener.data_dir).as_posix()
               for p in on_disk.values()}  # fmt: skip
    assert folders == set(entries.values())

    stores = 2 * SERIES * PER_SENDER
    record_property("observed", (
        f"{2 * SERIES} senders ({SERIES} storescu, {SERIES} pynetdicom), {stores} "
        f"C-STOREs of {len(sent)} distinct instances in {SERIES} series, plus 2 "
        f"pacsretrieve runs of the {len(corpus)}-instance corpus "
        f"({', '.join(f'{r.seconds:.1f} s' for r in runs)}): all status 0 / exit "
        f"0; {len(on_disk)} files on disk, each once, hashes unchanged; "
        f"{len(entries)} index entries, each folder count right, no folder "
        "without an entry; .incoming empty"
    ))  # fmt: skip
