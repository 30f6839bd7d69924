"""Build the C-FIND identifiers of a query, from the filters the user gave.

A query asks in the Study Root information model, first at STUDY level, then at
SERIES level for each matching study. Each key goes to the level whose entity it
describes (PS3.4 C.6.2.1: in Study Root the patient's attributes are asked at
STUDY level), so that a PACS never sees a key that is not valid where it is sent.

"Any value" is an empty value, never ``*``: a PACS may refuse ``*`` in a UID,
date, time or number (Orthanc answers 0xC000).
"""

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from pacscommon.errors import InputError

UTF8 = "ISO_IR 192"
STUDY = "STUDY"
SERIES = "SERIES"

#: The columns every row has, from the STUDY-level answer.
STUDY_COLUMNS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyDescription",
    "AccessionNumber",
    "StudyInstanceUID",
    "ModalitiesInStudy",
)
#: The columns every row has, from the SERIES-level answer.
SERIES_COLUMNS = (
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "NumberOfSeriesRelatedInstances",
)

_COLUMNS = frozenset({*STUDY_COLUMNS, *SERIES_COLUMNS})

# PS3.4 C.6.1.1.2, C.6.1.1.3 and C.6.2.1: the Patient and Study attributes that
# Study Root asks at STUDY level. Every other keyword is asked at SERIES level.
STUDY_LEVEL_KEYWORDS = frozenset(
    {
        *STUDY_COLUMNS,
        "IssuerOfPatientID",
        "OtherPatientIDs",
        "OtherPatientNames",
        "PatientBirthTime",
        "PatientBirthName",
        "PatientMotherBirthName",
        "PatientComments",
        "PatientSpeciesDescription",
        "PatientBreedDescription",
        "ResponsiblePerson",
        "ResponsibleOrganization",
        "PatientIdentityRemoved",
        "EthnicGroup",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
        "StudyTime",
        "StudyID",
        "ReferringPhysicianName",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "AdmittingDiagnosesDescription",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "Occupation",
        "AdditionalPatientHistory",
        "OtherStudyNumbers",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "SOPClassesInStudy",
    }
)
# Keys of the IMAGE level, which a query of studies and series cannot carry.
INSTANCE_LEVEL_KEYWORDS = frozenset({"SOPInstanceUID", "InstanceNumber"})
# Keys the identifier always has, set here and never by the user.
RESERVED_KEYWORDS = frozenset({"QueryRetrieveLevel", "SpecificCharacterSet"})

# PS3.4 C.2.2.2: the value representations a matching key may have.
MATCHABLE_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UC", "UI"}
)
# PS3.4 C.2.2.2.4: wildcards are not allowed in these.
NO_WILDCARD_VRS = frozenset({"DA", "DS", "DT", "IS", "TM", "UI"})

_DATE = r"\d{8}|\d{4}-\d{2}-\d{2}"
_DATE_RANGE = re.compile(rf"(?P<start>{_DATE})?(?P<dash>-)?(?P<end>{_DATE})?")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_MAX_UID = 64
_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")


@dataclass(frozen=True)
class Criterion:
    """One matching key the user gave, and the option it came from."""

    keyword: str
    value: str
    source: str


@dataclass(frozen=True)
class QueryKeys:
    """The keys of a query at each level: keyword to matching value.

    An empty value is a return key (universal matching). ``columns`` are the
    keywords every row of the answer has, in order.
    """

    study: Mapping[str, str]
    series: Mapping[str, str]
    columns: tuple[str, ...]

    @property
    def character_set(self) -> str:
        """Return the SpecificCharacterSet the identifiers are encoded in."""
        values = [*self.study.values(), *self.series.values()]
        return "" if all(v.isascii() for v in values) else UTF8

    @property
    def matching(self) -> dict[str, str]:
        """Return the keys that constrain the answer (not the return keys)."""
        keys = {**self.study, **self.series}
        return {kw: value for kw, value in keys.items() if value}


def build_query(
    criteria: Iterable[Criterion], return_keys: Sequence[str] = ()
) -> QueryKeys:
    """Return the keys of a query: the columns, constrained by ``criteria``."""
    matching = _merge(criteria)
    extra = [kw for kw in [*matching, *return_keys] if kw not in _COLUMNS]
    columns = tuple(dict.fromkeys([*STUDY_COLUMNS, *SERIES_COLUMNS, *extra]))
    for keyword in columns:
        check_keyword(keyword, "--return-keys")
    study: dict[str, str] = {}
    series: dict[str, str] = {}
    for keyword in columns:
        level = study if level_of(keyword) == STUDY else series
        level[keyword] = matching.get(keyword, "")
    return QueryKeys(study=study, series=series, columns=columns)


def _merge(criteria: Iterable[Criterion]) -> dict[str, str]:
    """Return keyword to matching value; refuse one key given two values."""
    matching: dict[str, str] = {}
    sources: dict[str, str] = {}
    for criterion in criteria:
        check_matching_key(criterion.keyword, criterion.source)
        value = matching_value(criterion.keyword, criterion.value, criterion.source)
        if not value:
            continue
        known = matching.get(criterion.keyword)
        if known is not None and known != value:
            raise InputError(
                f"{criterion.source} and {sources[criterion.keyword]} both give "
                f"{criterion.keyword} ({value!r} and {known!r}); give it once"
            )
        matching[criterion.keyword] = value
        sources[criterion.keyword] = criterion.source
    return matching


def level_of(keyword: str) -> str:
    """Return the query level, STUDY or SERIES, at which ``keyword`` is asked."""
    return STUDY if keyword in STUDY_LEVEL_KEYWORDS else SERIES


def keyword_vr(keyword: str) -> str:
    """Return the value representation of a keyword (the first, if several)."""
    return dictionary_VR(keyword).split(" or ")[0]


def check_keyword(keyword: str, source: str) -> None:
    """Raise an input error unless ``keyword`` can be a key of this query."""
    if tag_for_keyword(keyword) is None:
        raise InputError(
            f"{source}: {keyword!r} is not a DICOM keyword; spell it as the "
            "standard does, for example PatientBirthDate"
        )
    if keyword in RESERVED_KEYWORDS:
        raise InputError(f"{source}: {keyword} is set by pacsquery itself")
    if keyword in INSTANCE_LEVEL_KEYWORDS:
        raise InputError(
            f"{source}: {keyword} is an instance-level key; pacsquery asks for "
            "studies and series"
        )
    if keyword_vr(keyword) == "SQ":
        raise InputError(f"{source}: {keyword} is a sequence, which is not supported")


def check_matching_key(keyword: str, source: str) -> None:
    """Raise an input error unless ``keyword`` can constrain a query."""
    check_keyword(keyword, source)
    vr = keyword_vr(keyword)
    if vr not in MATCHABLE_VRS:
        raise InputError(
            f"{source}: {keyword} (VR {vr}) cannot be matched; ask for it with "
            "--return-keys instead"
        )


def matching_value(keyword: str, value: str, source: str) -> str:
    """Return ``value`` as a matching value of ``keyword``, checked."""
    text = value.strip()
    if text == "*":
        # PS3.4 C.2.2.2.4: a lone "*" is universal matching, sent as empty.
        return ""
    vr = keyword_vr(keyword)
    if vr == "DA":
        return parse_date(text, source)
    if vr in NO_WILDCARD_VRS and ("*" in text or "?" in text):
        raise InputError(
            f"{source} {value!r}: wildcards are not allowed in a {keyword}; "
            "give the whole value"
        )
    if vr == "UI":
        return parse_uids(text, source)
    if vr == "CS":
        # Code strings are upper case and hold no comma: a comma lists values.
        return "\\".join(v.strip().upper() for v in text.split(",") if v.strip())
    return text


def parse_date(text: str, source: str = "--study-date") -> str:
    """Return a date or a date range in DICOM form, or raise an input error.

    ``YYYYMMDD`` and ``YYYY-MM-DD`` are accepted, alone or as a range ``A-B``,
    ``A-`` (from A on) or ``-B`` (up to B). An empty value means any date.
    """
    value = "".join(text.split())
    if value in ("", "*"):
        return ""
    match = _DATE_RANGE.fullmatch(value)
    start = match.group("start") if match else None
    end = match.group("end") if match else None
    dash = match.group("dash") if match else None
    if match is None or not (start or end) or (start and end and not dash):
        raise InputError(
            f"{source} {text!r} is not a date: use YYYYMMDD or YYYY-MM-DD, or a "
            "range such as 20240101-20241231"
        )
    first = _check_date(start, text, source)
    last = _check_date(end, text, source)
    if first and last and first > last:
        raise InputError(f"{source} {text!r}: the range ends before it starts")
    return f"{first}{dash or ''}{last}"


def _check_date(part: str | None, text: str, source: str) -> str:
    """Return one date as ``YYYYMMDD``, or raise if it is not a calendar date."""
    if not part:
        return ""
    digits = part.replace("-", "")
    try:
        datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as exc:
        raise InputError(
            f"{source} {text!r}: {part} is not a date ({exc}); use YYYYMMDD or "
            "YYYY-MM-DD"
        ) from exc
    return digits


def parse_uids(text: str, source: str) -> str:
    """Return one UID, or several joined by a backslash, or raise if malformed."""
    uids = [u.strip() for u in re.split(r"[\\,]", text) if u.strip()]
    for uid in uids:
        if len(uid) > _MAX_UID or not _UID.fullmatch(uid):
            raise InputError(
                f"{source} {uid!r} is not a UID: use digits and dots, at most 64 "
                "characters"
            )
    return "\\".join(uids)


def parse_filter(text: str, source: str = "--filter") -> list[Criterion]:
    """Return the criteria of ``"Keyword=value,Keyword=value"``.

    A piece without ``Keyword=`` continues the value before it, so a value may
    hold a comma (``StudyDescription=Head, neck``).
    """
    pairs: list[list[str]] = []
    for piece in text.split(","):
        name, equals, value = piece.partition("=")
        if equals and _KEYWORD.fullmatch(name.strip()):
            pairs.append([name.strip(), value])
        elif pairs:
            pairs[-1][1] += "," + piece
        elif piece.strip():
            raise InputError(
                f"{source} {text!r}: {piece.strip()!r} is not Keyword=value; "
                'write for example "BodyPartExamined=HEAD,StationName=MR1"'
            )
    return [Criterion(name, value, f"{source} {name}") for name, value in pairs]


def parse_return_keys(text: str, source: str = "--return-keys") -> list[str]:
    """Return the keywords of ``"Keyword,Keyword"``, each checked."""
    keywords = [kw.strip() for kw in text.split(",") if kw.strip()]
    for keyword in keywords:
        check_keyword(keyword, source)
    return keywords


def study_identifier(keys: QueryKeys) -> Dataset:
    """Return the STUDY-level identifier of the query."""
    return _identifier(STUDY, keys.character_set, keys.study)


def series_identifier(keys: QueryKeys, StudyInstanceUID: str) -> Dataset:
    """Return the SERIES-level identifier of the query within one study."""
    # PS3.4 C.4.1.2.1: below the top level, the unique keys of every level
    # above are given, with single values.
    level_keys = {"StudyInstanceUID": StudyInstanceUID, **keys.series}
    return _identifier(SERIES, keys.character_set, level_keys)


def _identifier(level: str, charset: str, keys: Mapping[str, str]) -> Dataset:
    """Return an identifier of ``level`` holding ``keys``."""
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        ds.add_new(keyword, keyword_vr(keyword), value or None)
    return ds
