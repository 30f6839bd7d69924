"""Put a retrieved series into the output directory, whole or not at all."""

import logging
import os
import shutil
from pathlib import Path

from pacscommon.layout import uid_file_name

logger = logging.getLogger(__name__)

STAGING_DIR = ".pacsretrieve-staging"


def instance_names(folder: Path) -> list[str]:
    """Return the names of the instance files in a series folder, sorted."""
    # os.scandir, not Path.glob: a series may hold thousands of instances.
    with os.scandir(folder) as items:
        return sorted(
            i.name for i in items if i.name.endswith(".dcm") and i.name[0] != "."
        )


def _link_or_copy(source: str, target: str) -> None:
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
    try:
        for name in instance_names(source):
            _link_or_copy(os.path.join(source, name), os.path.join(staging, name))
    except BaseException:
        # A failed copy, or a stop: no half series stays behind.
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(outputdir / STAGING_DIR)
        raise

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
