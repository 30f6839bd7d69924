"""Turn DICOM element values into the text the results file and layout use.

Every value becomes a string: absent or empty is ``""``, a person name is
written as DICOM writes it (``Family^Given``, groups joined by ``=``), several
values are joined by a backslash, numbers are their decimal text.
"""

import warnings
from collections.abc import Iterable
from typing import Any, TypeGuard

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import AMBIGUOUS_VR, VR, PersonName

# (0008,0005) SpecificCharacterSet, which pydicom decodes in its default set.
_CHARSET_TAG = 0x00080005
# Values that do not parse as their VR.
_BAD_VALUE = (ValueError, TypeError, LookupError, OverflowError)


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
    except _BAD_VALUE:
        # A value that does not parse as its VR: keep its raw text.
        raw = ds.get_item(keyword)
        return value_text(raw.value if raw is not None else None)


class TextDecoder:
    """Turn the elements of many answers into text, each distinct value once.

    Each value is what :func:`element_text` gives. A raw element read from a
    buffer is converted by pydicom with its dataset's character set directly,
    not through ``Dataset.__getitem__`` (which costs several times the
    conversion itself), and the answers to one query repeat most of their
    values (a patient's name, dates, modalities): a value whose conversion
    warned of nothing is kept, keyed by all that its conversion reads (tag, VR,
    bytes, byte order, character set), and given again without converting.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.known: dict[tuple[Any, ...], str] = {}
        # Keyword to its tag, and whether its conversion depends on nothing else
        # in the dataset (not SpecificCharacterSet itself, not a private tag).
        self.tags: dict[str, tuple[int | None, bool]] = {}

    def texts(
        self, ds: Dataset, keywords: Iterable[str]
    ) -> tuple[dict[str, str], list[str]]:
        """Return each keyword's text (``""`` if absent) and the warnings, once each."""
        charset = ds.original_character_set
        if not charset:
            charset_key = None
        else:
            charset_key = charset if isinstance(charset, str) else tuple(charset)
        record: dict[str, str] = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for keyword in keywords:
                tag, plain = self._tag(keyword)
                raw = ds.get_item(tag) if tag is not None else None
                if raw is None:
                    record[keyword] = ""
                elif plain and charset_key and _readable(raw):
                    key = (tag, raw.VR, raw.value, raw.is_little_endian, charset_key)
                    text = self.known.get(key)
                    if text is None:
                        text = self._convert(ds, keyword, raw, key, caught)
                    record[keyword] = text
                else:
                    record[keyword] = element_text(ds, keyword) or ""
        return record, list(dict.fromkeys(str(w.message) for w in caught))

    def _tag(self, keyword: str) -> tuple[int | None, bool]:
        """Return a keyword's tag and whether its values convert on their own."""
        known = self.tags.get(keyword)
        if known is None:
            tag = tag_for_keyword(keyword)
            plain = tag is not None and tag != _CHARSET_TAG and not (tag >> 16) % 2
            known = self.tags[keyword] = (tag, plain)
        return known

    def _convert(
        self,
        ds: Dataset,
        keyword: str,
        raw: RawDataElement,
        key: tuple[Any, ...],
        caught: list[Any],
    ) -> str:
        """Convert a value not seen before; keep it if pydicom warned of nothing."""
        warned = len(caught)
        text = _converted_text(raw, ds.original_character_set, ds)
        if text is None:
            return element_text(ds, keyword) or ""
        if len(caught) == warned:
            if len(self.known) >= self.limit:
                self.known.clear()
            self.known[key] = text
        return text


def _readable(raw: object) -> TypeGuard[RawDataElement]:
    """Return whether an element is raw and its value already read."""
    return isinstance(raw, RawDataElement) and raw.value is not None


def _converted_text(raw: RawDataElement, charset: Any, ds: Dataset) -> str | None:
    """Return a raw element's text, or ``None`` if only the dataset can convert it."""
    try:
        elem = convert_raw_data_element(raw, encoding=charset, ds=ds)
        if elem.VR == VR.SQ or elem.VR in AMBIGUOUS_VR:
            # pydicom's own access fixes these up from the rest of the dataset.
            return None
        return value_text(elem.value)
    except _BAD_VALUE:
        return None
