"""Make the benchmark's data sets: a CT series and a set of small instances.

Every file is built with pydicom, Explicit VR Little Endian, with new UIDs per
instance. The sets are deterministic (UIDs and pixels derive from the set's name
and the instance's number) and cached under ``bench/work/``: a set is made only
when its folder has no manifest, which is written last.

    python bench/data.py [--quick]
"""

import argparse
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

WORK = Path(__file__).resolve().parent / "work"
MANIFEST = "manifest.json"
FORMAT = 2  # of the generated sets; a cache of another format is made again
UID_NAMESPACE = uuid.UUID("5d2f7a4e-9c1b-4e8a-b6f3-2a7c0e9d1b45")  # this benchmark's


@dataclass(frozen=True)
class DataSet:
    """One benchmark data set: how many instances, how large, in how many series."""

    name: str
    count: int
    size: int  # rows and columns of each image
    series: int

    @property
    def folder(self) -> Path:
        """Return the cache folder of this set."""
        return WORK / f"{self.name}-{self.count}"


CT_SERIES = DataSet("ct", 500, 512, 1)
SMALL_SET = DataSet("small", 5000, 64, 10)
QUICK_CT = DataSet("ct", 50, 512, 1)
QUICK_SMALL = DataSet("small", 500, 64, 10)


def data_sets(quick: bool) -> tuple[DataSet, DataSet]:
    """Return the CT series and the small set, full size or quick."""
    return (QUICK_CT, QUICK_SMALL) if quick else (CT_SERIES, SMALL_SET)


def uid(*parts: object) -> str:
    """Return a UID that depends only on ``parts``: 2.25 and a name-based UUID."""
    # NOTE: pydicom's generate_uid(None, ...) ignores its entropy sources and
    # returns a random UUID, so the UUID is made here.
    name = "/".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"


def base_attributes(spec: DataSet, series: int) -> Dataset:
    """Return the patient, study and series attributes shared by a series."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Bench^Phantom"
    ds.PatientID = "BENCH0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uid("bench", spec.name, "study")
    ds.StudyDate = "20240315"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC0001"
    ds.StudyDescription = f"BENCH {spec.name.upper()}"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = uid("bench", spec.name, "series", series)
    ds.SeriesNumber = series + 1
    ds.SeriesDescription = f"Axial {spec.name} {series + 1}"
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = ds.StudyTime
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = uid("bench", spec.name, "frame", series)
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "BENCH"
    ds.ManufacturerModelName = "Synthetic"
    ds.InstitutionName = "Bench Hospital"
    ds.StationName = "BENCH01"
    ds.SoftwareVersions = "1.0"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = "350"
    ds.XRayTubeCurrent = 250
    ds.ExposureTime = 500
    ds.ConvolutionKernel = "B30f"
    ds.SliceThickness = "1.0"
    ds.GantryDetectorTilt = "0"
    ds.RotationDirection = "CW"
    return ds


def image_attributes(ds: Dataset, spec: DataSet, number: int) -> None:
    """Add the image pixel module and the plane of instance ``number``."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = number + 1
    location = -250.0 + number * 1.0
    ds.ImagePositionPatient = ["-175.0", "-175.0", f"{location:.1f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SliceLocation = f"{location:.1f}"
    spacing = f"{350.0 / spec.size:.6f}"
    ds.PixelSpacing = [spacing, spacing]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.size
    ds.Columns = spec.size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"


def phantom(size: int, number: int) -> bytes:
    """Return the pixels of one slice: a body disc, a spine, and seeded noise."""
    grid = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    x, y = np.meshgrid(grid, grid)
    pixels = np.where(x * x + y * y < 0.8, 1064.0, 24.0)
    pixels = np.where((x * x + (y - 0.45) ** 2) < 0.01, 1800.0, pixels)
    rng = np.random.default_rng(number)
    noise = rng.normal(0.0, 20.0, (size, size))
    return np.clip(pixels + noise, 0, 4095).astype("<i2").tobytes()


def build_instance(spec: DataSet, number: int) -> Dataset:
    """Return instance ``number`` of ``spec`` as a complete Part-10 data set."""
    series = number * spec.series // spec.count
    ds = base_attributes(spec, series)
    image_attributes(ds, spec, number)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = uid("bench", spec.name, "instance", number)
    ds.PixelData = phantom(spec.size, number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def ensure(spec: DataSet) -> list[Path]:
    """Return the files of ``spec``, making the set first if it is not cached."""
    manifest = spec.folder / MANIFEST
    if manifest.exists():
        record = json.loads(manifest.read_text())
        if record.get("format") == FORMAT:
            return [spec.folder / name for name in record["files"]]
    shutil.rmtree(spec.folder, ignore_errors=True)
    spec.folder.mkdir(parents=True)
    names, series = [], set()
    for number in range(spec.count):
        name = f"{number:05d}.dcm"
        partial = spec.folder / f"{name}.part"
        ds = build_instance(spec, number)
        ds.save_as(partial, enforce_file_format=True)
        os.replace(partial, spec.folder / name)
        names.append(name)
        series.add(ds.SeriesInstanceUID)
    if len(series) != spec.series:
        raise RuntimeError(f"{spec.name}: {len(series)} series, not {spec.series}")
    total = sum((spec.folder / n).stat().st_size for n in names)
    record = {"format": FORMAT, "count": spec.count, "series": sorted(series),
              "bytes": total, "files": names}  # fmt: skip
    manifest.write_text(json.dumps(record, indent=1))
    return [spec.folder / name for name in names]


def volume(files: list[Path]) -> int:
    """Return the number of bytes in ``files``."""
    return sum(f.stat().st_size for f in files)


def main() -> int:
    """Make (or find) the data sets and say how large they are."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small sets")
    options = parser.parse_args()
    for spec in data_sets(options.quick):
        files = ensure(spec)
        size = volume(files)
        print(f"{spec.folder}: {len(files)} files, {size / 1e6:.1f} MB, "
              f"{size / len(files) / 1e3:.1f} KB each")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
