"""Build a seed corpus of real DICOM files for the PACS tests.

Every file comes from the test data that ``pydicom`` and ``pydicom-data`` ship,
looked up offline (``get_testdata_file(..., download=False)``; the charset
samples are read from ``pydicom/data/charset_files``). Many of those files are
one image in several transfer syntaxes and share their UIDs, and Orthanc keeps
only the first copy of a duplicate, so each copy gets fresh, seeded UIDs.

What is rewritten, and nothing else:

- ``StudyInstanceUID``, ``SeriesInstanceUID``, ``SOPInstanceUID`` and the file
  meta ``MediaStorageSOPInstanceUID``: from
  ``generate_uid(entropy_srcs=[SEED, ...])``, the same on every run.
- ``InstanceNumber`` of cloned slices: 1, 2, ... in the order written.
- ``StudyDate`` where the plan below gives one (the second MR study, and the
  files that have none), so that date filters have something to tell apart.
- ``StudyDescription`` and ``AccessionNumber`` when absent or empty:
  ``"Corpus study <key>"`` and ``"ACC<n:04d>"`` (``n`` counts studies from 1 in
  the plan's order).
- ``SeriesDescription`` when absent or empty: ``"<Modality> <transfer syntax
  name>"``, for example ``"MR RLE Lossless"``. ``SeriesNumber`` when absent,
  empty, or already taken by an earlier series of the same study: the series'
  position in its study, from 1.

The transfer syntax and the PixelData value bytes are kept as they are;
``build_corpus`` checks the bytes against the source. ``rtdose_1frame.dcm`` has
an empty InstanceNumber and keeps it empty, for tests of that edge.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pydicom.data
import pydicom.multival
from pydicom.dataset import FileDataset
from pydicom.uid import UID, generate_uid

LOGGER = logging.getLogger(__name__)

#: Mixed into every generated UID, so that reruns give the same UIDs.
SEED = "pacs-chris-tests-corpus-v1"

CHARSET_DIR = Path(pydicom.data.__file__).parent / "charset_files"


@dataclass(frozen=True)
class SeriesPlan:
    """One series to write: a source file, cloned ``copies`` times."""

    source: str
    copies: int = 1


@dataclass(frozen=True)
class StudyPlan:
    """One study to write, of one or more series."""

    key: str
    series: tuple[SeriesPlan, ...]
    StudyDate: str | None = None


#: The corpus: 8 patients, 9 studies, 12 series, 19 instances.
PLAN: tuple[StudyPlan, ...] = (
    # 1CT1: one CT series of 6 slices (Explicit VR Little Endian).
    StudyPlan("ct", (SeriesPlan("CT_small.dcm", copies=6),)),
    # CQ500-CT-310: a 512x512 CT slice, JPEG 2000 Lossless (from pydicom-data).
    StudyPlan("ct-j2k", (SeriesPlan("693_J2KR.dcm"),), StudyDate="20180215"),
    # 4MR1: two studies (original date, then a year later).
    StudyPlan(
        "mr-2004",
        (SeriesPlan("MR_small.dcm", copies=3), SeriesPlan("MR_small_RLE.dcm")),
    ),
    StudyPlan(
        "mr-2005",
        (
            SeriesPlan("MR_small_jpeg_ls_lossless.dcm"),
            SeriesPlan("MR_small_jp2klossless.dcm"),
        ),
        StudyDate="20050826",
    ),
    # 204: ultrasound, JPEG Baseline.
    StudyPlan("us-jpeg", (SeriesPlan("examples_ybr_color.dcm"),)),
    # 8NM1: nuclear medicine, JPEG 2000 (lossy) and JPEG Extended.
    StudyPlan("nm", (SeriesPlan("JPEG2000.dcm"), SeriesPlan("JPEG-lossy.dcm"))),
    # id11111: RT dose, Implicit VR Little Endian.
    StudyPlan("rtdose", (SeriesPlan("rtdose_1frame.dcm"),)),
    # SCSGERM: Latin-1 (ISO_IR 100) name "Äneas^Rüdiger".
    StudyPlan("latin1", (SeriesPlan("chrGerm.dcm"),), StudyDate="20190312"),
    # X1EXAMPLE: UTF-8 (ISO_IR 192) name "Wang^XiaoDong=王^小東".
    StudyPlan("utf8", (SeriesPlan("chrX1.dcm"),), StudyDate="20210704"),
)


@dataclass(frozen=True)
class CorpusFile:
    """One written file and the attributes tests compare against."""

    path: Path
    source: Path
    PatientID: str
    PatientName: str
    StudyInstanceUID: str
    SeriesInstanceUID: str
    SOPInstanceUID: str
    Modality: str
    TransferSyntaxUID: str
    StudyDate: str
    StudyDescription: str
    AccessionNumber: str
    SeriesDescription: str
    SeriesNumber: str
    InstanceNumber: str
    SpecificCharacterSet: str
    pixel_sha256: str


@dataclass(frozen=True)
class Corpus:
    """The files ``build_corpus`` wrote, in the order written."""

    root: Path
    files: tuple[CorpusFile, ...]

    def __iter__(self) -> Iterator[CorpusFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def series(self) -> dict[str, list[CorpusFile]]:
        """Group the files by SeriesInstanceUID."""
        groups: dict[str, list[CorpusFile]] = defaultdict(list)
        for item in self.files:
            groups[item.SeriesInstanceUID].append(item)
        return dict(groups)

    def studies(self) -> dict[str, list[CorpusFile]]:
        """Group the files by StudyInstanceUID."""
        groups: dict[str, list[CorpusFile]] = defaultdict(list)
        for item in self.files:
            groups[item.StudyInstanceUID].append(item)
        return dict(groups)

    def patients(self) -> dict[str, list[CorpusFile]]:
        """Group the files by PatientID."""
        groups: dict[str, list[CorpusFile]] = defaultdict(list)
        for item in self.files:
            groups[item.PatientID].append(item)
        return dict(groups)


def source_path(name: str) -> Path:
    """Return the path of a packaged test file, without any download."""
    charset = CHARSET_DIR / name
    if charset.is_file():
        return charset
    found = pydicom.data.get_testdata_file(name, download=False)
    if not isinstance(found, str):
        raise FileNotFoundError(f"{name} is in neither pydicom nor pydicom-data")
    return Path(found)


def read_dataset(path: Path) -> FileDataset:
    """Read a DICOM file, silencing pydicom's warnings about odd real data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pydicom.dcmread(path)


def pixel_data_bytes(path: Path) -> bytes:
    """Return the raw value bytes of a file's PixelData element."""
    ds = read_dataset(Path(path))
    if "PixelData" not in ds:
        raise ValueError(f"{path} has no PixelData")
    return bytes(ds.PixelData)


def seeded_uid(*parts: str) -> str:
    """Return a UID that depends only on SEED and the parts given."""
    return generate_uid(entropy_srcs=[SEED, *parts])


def build_corpus(dest: Path) -> Corpus:
    """Write the corpus into ``dest`` and describe what was written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files: list[CorpusFile] = []
    for number, study in enumerate(PLAN, start=1):
        files.extend(_write_study(dest, study, number, len(files)))
    LOGGER.debug("Corpus of %d files written to %s", len(files), dest)
    return Corpus(root=dest, files=tuple(files))


def _write_study(
    dest: Path, study: StudyPlan, number: int, offset: int
) -> list[CorpusFile]:
    """Write every series of one study; ``offset`` numbers the file names."""
    study_uid = seeded_uid(study.key, "study")
    written: list[CorpusFile] = []
    used_numbers: set[str] = set()
    for position, series in enumerate(study.series, start=1):
        series_uid = seeded_uid(study.key, str(position), "series")
        for copy in range(1, series.copies + 1):
            ds = read_dataset(source_path(series.source))
            _set_study(ds, study, number, study_uid)
            _set_series(ds, series_uid, position, used_numbers)
            sop_uid = seeded_uid(study.key, str(position), str(copy), "instance")
            _set_instance(ds, sop_uid, copy if series.copies > 1 else None)
            path = dest / f"{offset + len(written):03d}-{Path(series.source).stem}.dcm"
            written.append(_save(ds, path, source_path(series.source)))
        used_numbers.add(str(ds.SeriesNumber))
    return written


def _set_study(ds: FileDataset, study: StudyPlan, number: int, uid: str) -> None:
    """Give the dataset its study's UID, date and descriptors."""
    ds.StudyInstanceUID = uid
    if study.StudyDate is not None:
        ds.StudyDate = study.StudyDate
    if not ds.get("StudyDescription"):
        ds.StudyDescription = f"Corpus study {study.key}"
    if not ds.get("AccessionNumber"):
        ds.AccessionNumber = f"ACC{number:04d}"


def _set_series(
    ds: FileDataset, uid: str, position: int, used_numbers: set[str]
) -> None:
    """Give the dataset its series' UID, description and number."""
    ds.SeriesInstanceUID = uid
    if not ds.get("SeriesDescription"):
        syntax = ds.file_meta.TransferSyntaxUID
        ds.SeriesDescription = f"{ds.get('Modality', 'OT')} {syntax.name}"
    number = ds.get("SeriesNumber")
    if number is None or str(number) == "" or str(number) in used_numbers:
        ds.SeriesNumber = position


def _set_instance(ds: FileDataset, uid: str, instance_number: int | None) -> None:
    """Give the dataset its SOP Instance UID (and clone number, if cloned)."""
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
    if instance_number is not None:
        ds.InstanceNumber = instance_number


def _save(ds: FileDataset, path: Path, source: Path) -> CorpusFile:
    """Save in the source's transfer syntax and check the pixel bytes kept."""
    syntax = str(ds.file_meta.TransferSyntaxUID)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds.save_as(path, enforce_file_format=True)
    digest = hashlib.sha256(pixel_data_bytes(path)).hexdigest()
    if digest != hashlib.sha256(pixel_data_bytes(source)).hexdigest():
        raise RuntimeError(f"PixelData of {source.name} changed when written")
    written = read_dataset(path)
    if str(written.file_meta.TransferSyntaxUID) != syntax:
        raise RuntimeError(f"transfer syntax of {source.name} changed when written")
    return _describe(written, path, source, digest)


def _text(ds: FileDataset, keyword: str) -> str:
    """Return an element's value as text; absent or empty is ``""``."""
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(item) for item in value)
    return str(value)


def _describe(ds: FileDataset, path: Path, source: Path, digest: str) -> CorpusFile:
    """Return the attributes of a written file that tests compare."""
    return CorpusFile(
        path=path,
        source=source,
        PatientID=_text(ds, "PatientID"),
        PatientName=_text(ds, "PatientName"),
        StudyInstanceUID=_text(ds, "StudyInstanceUID"),
        SeriesInstanceUID=_text(ds, "SeriesInstanceUID"),
        SOPInstanceUID=_text(ds, "SOPInstanceUID"),
        Modality=_text(ds, "Modality"),
        TransferSyntaxUID=str(ds.file_meta.TransferSyntaxUID),
        StudyDate=_text(ds, "StudyDate"),
        StudyDescription=_text(ds, "StudyDescription"),
        AccessionNumber=_text(ds, "AccessionNumber"),
        SeriesDescription=_text(ds, "SeriesDescription"),
        SeriesNumber=_text(ds, "SeriesNumber"),
        InstanceNumber=_text(ds, "InstanceNumber"),
        SpecificCharacterSet=_text(ds, "SpecificCharacterSet"),
        pixel_sha256=digest,
    )
