"""Name the folders and files of the series tree, as ChRIS's receivers do.

The tree under a data directory is::

    <PatientID>-<PatientName>-<PatientBirthDate>/
      <StudyDescription>-<AccessionNumber>-<StudyDate>/
        <SeriesNumber:05>-<SeriesDescription>-<hash7>/
          <InstanceNumber:04>-<SOPInstanceUID>.dcm

Every value comes from a sender, so every component goes through
:func:`sanitize` and :func:`fit_component`; nothing here can name a path outside
the data directory.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from pacscommon.seahash import seahash_hex

# NAME_MAX of the usual Linux filesystems, in bytes.
MAX_COMPONENT_BYTES = 255

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
_UINT = re.compile(r"\+?[0-9]+")
_PLAIN_UID = re.compile(r"[0-9][0-9.]{0,63}")

# Keywords whose absence leaves an empty field rather than the keyword itself.
_EMPTY_WHEN_ABSENT = frozenset({"PatientName", "PatientBirthDate"})


def sanitize(value: str) -> str:
    """Strip spaces and NULs around ``value``; turn each unsafe run into ``_``."""
    return _UNSAFE.sub("_", value.strip(" \x00"))


def fit_component(name: str, suffix: str = "") -> str:
    """Make ``name + suffix`` one safe path component of at most 255 bytes.

    A name that is too long is cut and given a hash of the whole name, so that
    two long names that share their start stay apart.
    """
    if name in ("", ".", ".."):
        name = name.replace(".", "_") or "_"
    if len((name + suffix).encode()) <= MAX_COMPONENT_BYTES:
        return name + suffix
    tag = "_" + seahash_hex(name.encode())[:12]
    keep = MAX_COMPONENT_BYTES - len(tag.encode()) - len(suffix.encode())
    # The sanitized name is ASCII, so a byte count is a character count.
    return name[:keep] + tag + suffix


def _field(attrs: Mapping[str, str | None], keyword: str) -> str:
    """Return the sanitized value of ``keyword``, or its stand-in when absent."""
    value = attrs.get(keyword)
    if value is None:
        return "" if keyword in _EMPTY_WHEN_ABSENT else keyword
    return sanitize(value)


def _number(attrs: Mapping[str, str | None], keyword: str, width: int) -> str:
    """Return an integer attribute zero-padded to ``width``, or as text."""
    value = attrs.get(keyword)
    if value is None:
        return keyword
    text = value.strip(" \x00")
    if _UINT.fullmatch(text):
        return f"{int(text):0{width}d}"
    return sanitize(text)


def series_hash(SeriesInstanceUID: str) -> str:
    """Return the seven hex digits that end a series folder's name."""
    return seahash_hex(SeriesInstanceUID.encode())[:7]


@dataclass(frozen=True)
class SeriesPath:
    """Where one series lives, relative to the data directory."""

    patient: str
    study: str
    series: str

    @property
    def relative(self) -> PurePosixPath:
        """Return the series folder relative to the data directory."""
        return PurePosixPath(self.patient, self.study, self.series)


def series_path(attrs: Mapping[str, str | None]) -> SeriesPath:
    """Return the folders of the series an instance with ``attrs`` belongs to.

    ``attrs`` maps DICOM keywords to text values, ``None`` for an absent one.
    """
    f = _field
    patient = "-".join(
        (f(attrs, "PatientID"), f(attrs, "PatientName"), f(attrs, "PatientBirthDate"))
    )
    study = "-".join(
        (
            f(attrs, "StudyDescription"),
            f(attrs, "AccessionNumber"),
            f(attrs, "StudyDate"),
        )
    )
    uid = (attrs.get("SeriesInstanceUID") or "").strip(" \x00")
    series = "-".join(
        (
            _number(attrs, "SeriesNumber", 5),
            f(attrs, "SeriesDescription"),
            series_hash(uid),
        )
    )
    return SeriesPath(
        fit_component(patient), fit_component(study), fit_component(series)
    )


def instance_name(attrs: Mapping[str, str | None]) -> str:
    """Return the file name of an instance: ``<InstanceNumber:04>-<UID>.dcm``."""
    stem = "-".join(
        (_number(attrs, "InstanceNumber", 4), _field(attrs, "SOPInstanceUID"))
    )
    return fit_component(stem, ".dcm")


def uid_file_name(uid: str, suffix: str) -> str:
    """Return a safe file name for a UID: the UID itself when it is a plain one."""
    uid = uid.strip(" \x00")
    if _PLAIN_UID.fullmatch(uid) and ".." not in uid:
        return uid + suffix
    name = "uid_" + sanitize(uid) + "_" + seahash_hex(uid.encode())[:7]
    return fit_component(name, suffix)
