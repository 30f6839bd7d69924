"""Put a retrieved series into the output directory, whole or not at all."""

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from pacscommon.headscan import part10_head, scan_layout
from pacscommon.layout import uid_file_name

logger = logging.getLogger(__name__)

STAGING_DIR = ".pacsretrieve-staging"
CHUNK = 1024 * 1024
HEAD_BYTES = 64 * 1024


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target``, or copy it across filesystems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def copy_series(
    source: Path, outputdir: Path, relative: str, SeriesInstanceUID: str
) -> Path:
    """Copy the instances of a series folder to ``outputdir/relative``.

    The copy is built in a staging folder and renamed into place, replacing a
    copy from an earlier run, so the output never holds half a series.
    """
    staging = outputdir / STAGING_DIR / uid_file_name(SeriesInstanceUID, "")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for item in sorted(source.glob("*.dcm")):
        _link_or_copy(item, staging / item.name)

    target = outputdir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        old = staging.with_name(staging.name + ".old")
        os.rename(target, old)
        shutil.rmtree(old)
    os.rename(staging, target)
    _remove_if_empty(outputdir / STAGING_DIR)
    logger.debug("series %s copied to %s", SeriesInstanceUID, target)
    return target


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if nothing is left in it."""
    try:
        folder.rmdir()
    except OSError:
        pass


def describe_instances(folder: Path, outputdir: Path) -> list[dict[str, Any]]:
    """Return, for each instance in ``folder``, its file, SOPInstanceUID and SHA-256."""
    described = []
    for path in sorted(folder.glob("*.dcm")):
        digest, first, whole = _read_whole(path)
        described.append(
            {
                "file": path.relative_to(outputdir).as_posix(),
                "SOPInstanceUID": _sop_instance_uid(path, first, whole),
                "sha256": digest,
            }
        )
    return described


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes, in lower-case hex."""
    return _read_whole(path)[0]


def _read_whole(path: Path) -> tuple[str, bytes, bool]:
    """Read a file once; return its SHA-256, its first block, whether that is all."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        first = block = f.read(CHUNK)
        whole = len(first) < CHUNK
        while block:
            digest.update(block)
            block = f.read(CHUNK)
    return digest.hexdigest(), first, whole


def _sop_instance_uid(path: Path, first: bytes, whole: bool) -> str | None:
    """Return the SOPInstanceUID of a stored instance, read without its pixels."""
    # The attributes sit in the first kilobytes; a larger slice only costs.
    head = part10_head(first[:HEAD_BYTES], whole and len(first) <= HEAD_BYTES)
    found = scan_layout(head) if head is not None else None
    if found is not None:
        return found["SOPInstanceUID"]
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
    except (InvalidDicomError, ValueError, TypeError, EOFError, OSError):
        return None
    value = ds.get("SOPInstanceUID")
    return None if value is None else str(value)
