"""Turn what the user typed into matching values a PACS reads as the user meant.

- Dates (DA): ``YYYYMMDD``, ``YYYY-MM-DD``, a month ``YYYYMM``/``YYYY-MM`` or a
  year ``YYYY``, alone or as a range ``A-B``, ``A-`` or ``-B``. A month or a year
  becomes the range of its days (PS3.4 C.2.2.2.5: range matching).
- Times (TM): ``HH``, ``HHMM``, ``HHMMSS[.ffffff]`` or with colons, alone or as
  a range. A time of partial precision stands for the whole hour, minute or
  second: ``-1015`` ends at ``101559.999999``, ``1015`` is that minute.
- UIDs (UI): one, or several joined by commas or backslashes.
- Keys: a DICOM keyword, or a tag ``gggg,eeee`` or ``(gggg,eeee)``.
"""

import calendar
import datetime
import re
import warnings
from collections.abc import Sequence

from pydicom.charset import convert_encodings, encode_string
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from pacscommon.errors import InputError

# PS3.4 C.2.2.2: the value representations a matching key may have.
MATCHABLE_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UC", "UI"}
)
# PS3.4 C.2.2.2.4: wildcards are not allowed in these.
NO_WILDCARD_VRS = frozenset({"DA", "DS", "DT", "IS", "TM", "UI"})
WILDCARDS = ("*", "?")

_DATE = r"\d{8}|\d{4}-\d{2}-\d{2}|\d{6}|\d{4}-\d{2}|\d{4}"
_TIME = r"\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?"
_DATE_RANGE = re.compile(rf"(?P<start>{_DATE})?(?:(?P<dash>-)(?P<end>{_DATE})?)?")
_TIME_RANGE = re.compile(rf"(?P<start>{_TIME})?(?:(?P<dash>-)(?P<end>{_TIME})?)?")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_MAX_UID = 64
_HEX_PAIR = r"[0-9A-Fa-f]{4}\s*,\s*[0-9A-Fa-f]{4}"
# What looks like a tag, brackets or not, so that a malformed one is named whole.
_TAG = rf"\(?\s*{_HEX_PAIR}\s*\)?"
#: A key as typed: a tag (which holds a comma) or a keyword.
KEY_PATTERN = rf"{_TAG}|[A-Za-z][A-Za-z0-9]*"
_TAG_KEY = re.compile(_TAG)
_WELL_FORMED_TAG = re.compile(rf"\(\s*{_HEX_PAIR}\s*\)|{_HEX_PAIR}")


def keyword_vr(keyword: str) -> str:
    """Return the value representation of a keyword (the first, if several)."""
    return dictionary_VR(keyword).split(" or ")[0]


def resolve_key(text: str, source: str) -> str:
    """Return the keyword of a key typed as a keyword or as a tag."""
    key = text.strip()
    if not _TAG_KEY.fullmatch(key):
        return key
    if not _WELL_FORMED_TAG.fullmatch(key):
        raise InputError(
            f"{source}: {key} is not a tag: a bracket is not closed or not opened; "
            "write gggg,eeee or (gggg,eeee)"
        )
    digits = re.sub(r"[^0-9A-Fa-f]", "", key)
    keyword = keyword_for_tag(int(digits, 16))
    if not keyword or tag_for_keyword(keyword) is None:
        raise InputError(
            f"{source}: {key} is not a tag of the DICOM dictionary (private and "
            "retired-group tags are not supported); give a standard tag or keyword"
        )
    return str(keyword)


def matching_value(keyword: str, value: str, source: str) -> str:
    """Return ``value`` as a matching value of ``keyword``, checked."""
    text = value.strip()
    if text == "*":
        # PS3.4 C.2.2.2.4: a lone "*" is universal matching, sent as empty.
        return ""
    vr = keyword_vr(keyword)
    if vr in NO_WILDCARD_VRS and any(w in text for w in WILDCARDS):
        raise InputError(
            f"{source} {value!r}: wildcards are not allowed in a {keyword}; "
            "give the whole value"
        )
    if vr == "DA":
        return parse_date(text, source)
    if vr == "TM":
        return parse_time(text, source)
    if vr == "UI":
        return parse_uids(text, source)
    if vr == "CS":
        # Code strings are upper case and hold no comma: a comma lists values.
        return "\\".join(v.strip().upper() for v in text.split(",") if v.strip())
    return text


def parse_date(text: str, source: str = "--study-date") -> str:
    """Return a date or a date range in DICOM form, or raise an input error.

    A single full date stays one date; a month or a year, alone, becomes the
    range of its days; each end of a range is widened the same way.
    """
    value = "".join(text.split())
    if value in ("", "*"):
        return ""
    match = _DATE_RANGE.fullmatch(value)
    if match is None or not (match.group("start") or match.group("end")):
        raise InputError(
            f"{source} {text!r} is not a date: use YYYYMMDD or YYYY-MM-DD, a month "
            "YYYYMM or a year YYYY, or a range such as 20240101-20241231"
        )
    start, end = match.group("start"), match.group("end")
    if not match.group("dash"):
        end = start
    first = _date_bound(start, text, source, last=False)
    last = _date_bound(end, text, source, last=True)
    if first and last and first > last:
        raise InputError(f"{source} {text!r}: the range ends before it starts")
    if first == last:
        return first
    return f"{first}-{last}"


def _date_bound(part: str | None, text: str, source: str, last: bool) -> str:
    """Return one end of a date range as ``YYYYMMDD``, or raise if impossible."""
    if not part:
        return ""
    digits = part.replace("-", "")
    year, month = int(digits[:4]), int(digits[4:6] or (12 if last else 1))
    try:
        days = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
        day = int(digits[6:] or (days if last else 1))
        datetime.date(year, month, day)
    except ValueError as exc:
        raise InputError(
            f"{source} {text!r}: {part} is not a date ({exc}); use YYYYMMDD or "
            "YYYY-MM-DD"
        ) from exc
    return f"{year:04d}{month:02d}{day:02d}"


def parse_time(text: str, source: str = "--study-time") -> str:
    """Return a time range in DICOM form that covers what the user meant."""
    value = "".join(text.split())
    if value in ("", "*"):
        return ""
    match = _TIME_RANGE.fullmatch(value)
    if match is None or not (match.group("start") or match.group("end")):
        raise InputError(
            f"{source} {text!r} is not a time: use HHMM, HHMMSS or HH:MM:SS, or a "
            "range such as 0800-1015"
        )
    start, end = match.group("start"), match.group("end")
    if not match.group("dash"):
        end = start
    first = _time_bound(start, text, source, last=False)
    last = _time_bound(end, text, source, last=True)
    if first and last and first > last:
        raise InputError(f"{source} {text!r}: the range ends before it starts")
    return f"{first}-{last}"


def _time_bound(part: str | None, text: str, source: str, last: bool) -> str:
    """Return one end of a time range, widened to the end of its precision."""
    if not part:
        return ""
    digits = part.replace(":", "")
    whole, _, fraction = digits.partition(".")
    fields = [int(whole[i : i + 2]) for i in range(0, len(whole), 2)]
    if any(f >= limit for f, limit in zip(fields, (24, 60, 60), strict=False)):
        raise InputError(
            f"{source} {text!r}: {part} is not a time of day (HH < 24, MM and SS < 60)"
        )
    filler = "59" if last else "00"
    whole = whole + filler * (3 - len(fields))
    fill = "9" if last else "0"
    if last or fraction:
        return f"{whole}.{fraction.ljust(6, fill)}"
    return whole


def parse_uids(text: str, source: str) -> str:
    """Return one UID, or several joined by a backslash, or raise if malformed."""
    uids = [u.strip() for u in re.split(r"[\\,]", text) if u.strip()]
    for uid in uids:
        if len(uid) > _MAX_UID or not _UID.fullmatch(uid):
            raise InputError(
                f"{source} {uid!r} is not a UID: use digits and dots, at most 64 "
                "characters"
            )
    return "\\".join(dict.fromkeys(uids))


def has_wildcard(value: str) -> bool:
    """Return whether a matching value holds a wildcard."""
    return any(w in value for w in WILDCARDS)


def name_pattern(name: str) -> str:
    """Return a PN pattern that also matches ``name`` with empty components.

    PS3.5 6.2.1: trailing empty components and groups may be sent or left out,
    so ``DOE^JOHN`` and ``DOE^JOHN^^^`` are one name, which a PACS that matches
    literally (Orthanc does) tells apart. Each group gets a trailing ``*``; the
    answers are then checked with ``same_name``.
    """
    return "=".join(group + "*" for group in name.split("="))


def normal_name(name: str) -> str:
    """Return a person name without trailing empty components and groups."""
    groups = [group.rstrip("^ ") for group in name.split("=")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups).casefold()


def same_name(typed: str, answered: str, charset: Sequence[str] = ()) -> bool:
    """Return whether an answered name is the typed one, empty components aside.

    A name that the answer's character set cannot hold cannot come back intact
    (Orthanc drops the characters it cannot encode): the PACS's match stands.
    """
    if normal_name(typed) == normal_name(answered):
        return True
    return not can_hold(charset, typed)


def can_hold(charset: Sequence[str], text: str) -> bool:
    """Return whether ``text`` can be encoded in a SpecificCharacterSet's terms."""
    if text.isascii():
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            encode_string(text, convert_encodings(list(charset) or [""]))
        except (UserWarning, LookupError, UnicodeError, ValueError):
            return False
    return True
