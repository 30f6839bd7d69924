#!/usr/bin/env python3
"""Load sample studies into the compose stack's Orthanc and check they are there.

The samples are real files from the test data that the ``pydicom`` package ships
(any image with pydicom installed has them). Several of those files are one
image in other transfer syntaxes and share their UIDs, and Orthanc keeps one
copy of a duplicate, so every instance gets new UIDs, derived from the file and
a fixed seed: running the seed again stores nothing new. One CT slice is also
cloned into a longer series.

Exit 0 when Orthanc holds every instance sent, 1 otherwise. Environment:
``ORTHANC_URL`` (http://orthanc:8042).
"""

import json
import os
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pydicom
import pydicom.data
import pydicom.filebase
from pydicom.uid import UID, generate_uid

SEED = "pacs-chris-compose-seed-v1"
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"

#: (file, copies): each file is its own study; a file with copies > 1 becomes
#: a series of that many instances. Same-image files in other transfer
#: syntaxes land in the series of their original, as further instances.
SAMPLES = [
    ("CT_small.dcm", 5),
    ("MR_small.dcm", 1),
    ("MR_small_RLE.dcm", 1),
    ("MR_small_jp2klossless.dcm", 1),
    ("JPEG2000.dcm", 1),
    ("rtdose.dcm", 1),
    ("examples_ybr_color.dcm", 1),
    ("SC_rgb_jpeg_dcmtk.dcm", 1),
]


def seeded_uid(*parts: str) -> str:
    """Return a UID that is the same for the same parts on every run."""
    return generate_uid(entropy_srcs=[SEED, *parts])


def sample_bytes(name: str, copy: int, copies: int) -> tuple[str, bytes]:
    """Return the SOPInstanceUID and Part-10 bytes of one rewritten sample."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(TEST_FILES / name)
    ds.StudyInstanceUID = seeded_uid(str(ds.StudyInstanceUID), "study")
    series = str(ds.SeriesInstanceUID)
    ds.SeriesInstanceUID = seeded_uid(series, str(copies), "series")
    ds.SOPInstanceUID = seeded_uid(name, str(copy), "instance")
    ds.file_meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    if copies > 1:
        ds.InstanceNumber = copy + 1
    out = pydicom.filebase.DicomBytesIO()
    ds.save_as(out, enforce_file_format=True)
    return str(ds.SOPInstanceUID), out.getvalue()


def rest(url: str, data: bytes | None = None) -> dict:
    """Call Orthanc's REST API and return its JSON answer."""
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=30) as rsp:
        return json.loads(rsp.read())


def main() -> int:
    """Upload every sample, then check Orthanc holds each one."""
    base = os.environ.get("ORTHANC_URL", "http://orthanc:8042").rstrip("/")
    sent: dict[str, str] = {}
    for name, copies in SAMPLES:
        for copy in range(copies):
            uid, blob = sample_bytes(name, copy, copies)
            answer = rest(f"{base}/instances", blob)
            if answer.get("Status") not in ("Success", "AlreadyStored"):
                print(f"seed: error: Orthanc refused {name}: {answer}", file=sys.stderr)
                return 1
            sent[uid] = answer["ID"]
    missing = [uid for uid, oid in sent.items() if not _holds(base, oid)]
    series = {rest(f"{base}/instances/{oid}")["ParentSeries"] for oid in sent.values()}
    if missing:
        print(f"seed: error: Orthanc lacks {len(missing)} of {len(sent)} instances")
        return 1
    print(f"seed: Orthanc holds all {len(sent)} instances in {len(series)} series")
    return 0


def _holds(base: str, orthanc_id: str) -> bool:
    """Tell whether Orthanc has the instance with this Orthanc ID."""
    try:
        return rest(f"{base}/instances/{orthanc_id}")["ID"] == orthanc_id
    except urllib.error.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
