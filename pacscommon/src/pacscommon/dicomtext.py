"""Turn DICOM element values into the text the results file and layout use.

Every value becomes a string: absent or empty is ``""``, a person name is
written as DICOM writes it (``Family^Given``, groups joined by ``=``), several
values are joined by a backslash, numbers are their decimal text.
"""

from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName


def value_text(value: Any) -> str:
    """Return the text of one element value."""
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        return "\\".join(value_text(v) for v in value)
    if isinstance(value, PersonName):
        return _person_name(value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \x00")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip(" \x00")


def _person_name(name: PersonName) -> str:
    """Return a person name as DICOM writes it, decoded, groups joined by ``=``."""
    groups = [name.alphabetic, name.ideographic, name.phonetic]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def element_text(ds: Dataset, keyword: str) -> str | None:
    """Return the text of ``keyword`` in ``ds``, or ``None`` if it is absent."""
    if keyword not in ds:
        return None
    try:
        return value_text(ds[keyword].value)
    except (ValueError, TypeError, LookupError, OverflowError):
        # A value that does not parse as its VR: keep its raw text.
        raw = ds.get_item(keyword)
        return value_text(raw.value if raw is not None else None)
