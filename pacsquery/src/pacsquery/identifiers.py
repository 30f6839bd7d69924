"""Build the C-FIND identifiers of a query, from the filters the user gave.

A query walks an information model from its top level down to its depth
(:mod:`pacsquery.levels`): one C-FIND for the top level, then one for the
children of each match. Each key goes to the level whose entity it describes,
so that a PACS never sees a key that is not valid where it is sent; below the
top level an identifier carries the unique keys of the levels above (PS3.4
C.4.1.2.1). A key the standard does not list at PATIENT or STUDY level is asked
at SERIES level.

"Any value" is an empty value, never ``*``: a PACS may refuse ``*`` in a UID,
date, time or number (Orthanc answers 0xC000).
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from pacscommon.errors import InputError
from pacsquery.charsets import check_encodable
from pacsquery.levels import (
    MODEL_LEVELS,
    SERIES,
    STUDY,
    STUDY_ROOT,
    UNIQUE_KEYS,
    level_of,
)
from pacsquery.values import (
    KEY_PATTERN,
    MATCHABLE_VRS,
    has_wildcard,
    keyword_vr,
    matching_value,
    name_pattern,
    resolve_key,
)

UTF8 = "ISO_IR 192"

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
#: The columns a row has when it stands for a study (``--level study``).
STUDY_COUNT_COLUMNS = ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")

_COLUMNS = frozenset({*STUDY_COLUMNS, *SERIES_COLUMNS, *STUDY_COUNT_COLUMNS})

# Keys of the IMAGE level, which a query of studies and series cannot carry.
INSTANCE_LEVEL_KEYWORDS = frozenset({"SOPInstanceUID", "InstanceNumber"})
# Keys the identifier always has, set here and never by the user.
RESERVED_KEYWORDS = frozenset({"QueryRetrieveLevel", "SpecificCharacterSet"})
#: At most this many UIDs in one request by default; more are split.
UIDS_PER_QUERY = 100

_PAIR = re.compile(rf"(?:^|,)\s*(?P<key>{KEY_PATTERN})\s*=")
_RETURN_KEY = re.compile(rf"\s*(?P<key>{KEY_PATTERN}|[^,]+)\s*(?:,|$)")


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
    keywords every row of the answer has, in order. ``names`` are person names
    typed without wildcards, sent as patterns and checked on each answer.
    ``depth`` is the level a row stands for.
    """

    levels: Mapping[str, Mapping[str, str]]
    columns: tuple[str, ...]
    model: str = STUDY_ROOT
    declared_charset: str = UTF8
    names: Mapping[str, str] = field(default_factory=dict)
    label: str = ""
    depth: str = SERIES

    @property
    def study(self) -> Mapping[str, str]:
        """Return the keys asked at STUDY level."""
        return self.levels.get(STUDY, {})

    @property
    def series(self) -> Mapping[str, str]:
        """Return the keys asked at SERIES level."""
        return self.levels.get(SERIES, {})

    @property
    def character_set(self) -> str:
        """Return the SpecificCharacterSet the identifiers are encoded in."""
        values = [v for keys in self.levels.values() for v in keys.values()]
        return charset_for(values, self.declared_charset)

    @property
    def matching(self) -> dict[str, str]:
        """Return the keys that constrain the answer (not the return keys)."""
        keys = {k: v for level in self.levels.values() for k, v in level.items()}
        return {kw: value for kw, value in keys.items() if value}


def charset_for(values: Iterable[str], declared: str) -> str:
    """Return the declared character set if any value needs it, else ASCII's."""
    return "" if all(v.isascii() for v in values) else declared


def build_query(
    criteria: Iterable[Criterion],
    return_keys: Sequence[str] = (),
    model: str = STUDY_ROOT,
    charset: str = UTF8,
    depth: str = SERIES,
) -> QueryKeys:
    """Return the keys of a query: the columns, constrained by ``criteria``."""
    criteria = list(criteria)
    matching = _merge(criteria)
    if depth == STUDY:
        check_study_depth(criteria, matching, model)
    counts = STUDY_COUNT_COLUMNS if depth == STUDY else ()
    extra = [kw for kw in [*matching, *return_keys] if kw not in _COLUMNS]
    columns = tuple(dict.fromkeys([*STUDY_COLUMNS, *SERIES_COLUMNS, *counts, *extra]))
    for keyword in columns:
        check_keyword(keyword, "--return-keys")
    names = {
        kw: value
        for kw, value in matching.items()
        if keyword_vr(kw) == "PN" and not has_wildcard(value)
    }
    levels: dict[str, dict[str, str]] = {lv: {} for lv in MODEL_LEVELS[model]}
    for keyword in columns:
        value = matching.get(keyword, "")
        sent = name_pattern(value) if keyword in names else value
        levels[level_of(keyword, model)][keyword] = sent
    check_charset(charset, matching.values())
    return QueryKeys(levels, columns, model, charset, names, depth=depth)


def check_study_depth(
    criteria: Iterable[Criterion], matching: Mapping[str, str], model: str
) -> None:
    """Raise an input error for a series filter in a query of studies only."""
    for criterion in criteria:
        keyword = criterion.keyword
        if keyword in matching and level_of(keyword, model) == SERIES:
            raise InputError(
                f"{criterion.source} filters series, and --level study asks for "
                "studies only; use --level series, or --modalities-in-study for "
                "a modality"
            )


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


def check_keyword(keyword: str, source: str) -> None:
    """Raise an input error unless ``keyword`` can be a key of this query."""
    if tag_for_keyword(keyword) is None:
        raise InputError(
            f"{source}: {keyword!r} is not a DICOM keyword; spell it as the "
            "standard does, for example PatientBirthDate, or give its tag "
            "as gggg,eeee"
        )
    if keyword in RESERVED_KEYWORDS:
        raise InputError(f"{source}: {keyword} is set by pacsquery itself")
    if keyword in INSTANCE_LEVEL_KEYWORDS:
        raise InputError(
            f"{source}: {keyword} is an instance-level key; pacsquery asks for "
            "studies and series"
        )
    vr = keyword_vr(keyword)
    if vr == "SQ":
        raise InputError(f"{source}: {keyword} is a sequence, which is not supported")
    if vr.startswith("O") or vr == "UN":
        # PS3.4 C.2.2.1.3: a PACS may refuse bulk data keys (Orthanc drops
        # the association), and a results table has no place for their bytes.
        raise InputError(
            f"{source}: {keyword} (VR {vr}) is binary data, which pacsquery does "
            "not ask for"
        )


def check_matching_key(keyword: str, source: str) -> None:
    """Raise an input error unless ``keyword`` can constrain a query."""
    check_keyword(keyword, source)
    vr = keyword_vr(keyword)
    if vr not in MATCHABLE_VRS:
        raise InputError(
            f"{source}: {keyword} (VR {vr}) cannot be matched; ask for it with "
            "--return-keys instead"
        )


def check_model(model: str) -> str:
    """Return the information model named by ``--query-model``, checked."""
    name = model.strip().lower()
    if name not in MODEL_LEVELS:
        raise InputError(
            f"--query-model {model!r} is not an information model: use study "
            "(Study Root) or patient (Patient Root)"
        )
    return name


def charset_terms(charset: str) -> list[str]:
    """Return the defined terms of a SpecificCharacterSet typed with backslashes."""
    return [term.strip() for term in charset.split("\\")]


def check_charset(charset: str, values: Iterable[str]) -> None:
    """Raise an input error unless ``charset`` is known and holds every value."""
    check_encodable(charset, [value for value in values if not value.isascii()])


def parse_filter(text: str, source: str = "--filter") -> list[Criterion]:
    """Return the criteria of ``"Key=value,Key=value"``; a key is a keyword or tag.

    A piece without ``Key=`` continues the value before it, so a value may hold a
    comma (``StudyDescription=Head, neck``).
    """
    starts = list(_PAIR.finditer(text))
    head = text[: starts[0].start()] if starts else text
    if head.strip(" ,"):
        piece = _first_piece(head.strip(" ,"))
        raise InputError(
            f"{source} {text!r}: {piece!r} is not Keyword=value; write for "
            'example "BodyPartExamined=HEAD,(0008,1010)=MR1"'
        )
    criteria = []
    for n, match in enumerate(starts):
        end = starts[n + 1].start() if n + 1 < len(starts) else len(text)
        keyword = resolve_key(match.group("key"), source)
        value = text[match.end() : end]
        criteria.append(Criterion(keyword, value, f"{source} {keyword}"))
    return criteria


def _first_piece(text: str) -> str:
    """Return the first comma-separated piece of ``text``, a tag kept whole."""
    tag = re.match(rf"{KEY_PATTERN}", text)
    if tag and "," in tag.group():
        return tag.group()
    return text.split(",")[0].strip()


def parse_return_keys(text: str, source: str = "--return-keys") -> list[str]:
    """Return the keywords of ``"Key,Key"`` (keywords or tags), each checked."""
    keywords = []
    for match in _RETURN_KEY.finditer(text):
        key = match.group("key").strip()
        if key:
            keyword = resolve_key(key, source)
            check_keyword(keyword, source)
            keywords.append(keyword)
    return keywords


def level_identifiers(
    keys: QueryKeys,
    level: str,
    parents: Mapping[str, str],
    uids_per_query: int = UIDS_PER_QUERY,
) -> list[Dataset]:
    """Return the identifiers of ``level`` under ``parents``: one per UID chunk.

    A level's unique key listing more UIDs than ``uids_per_query`` is split into
    requests of at most that many (PS3.4 C.2.2.2.2: list of UID matching).
    """
    level_keys = {**parents, **keys.levels[level]}
    # One character set for every level of a query: a PACS that answers in the
    # request's character set then answers each level alike.
    charset = keys.character_set or charset_for(parents.values(), keys.declared_charset)
    unique = UNIQUE_KEYS[level]
    uids = level_keys.get(unique, "").split("\\")
    if len(uids) <= uids_per_query:
        return [identifier(level, charset, level_keys)]
    return [
        identifier(level, charset, {**level_keys, unique: "\\".join(chunk)})
        for chunk in _chunks(uids, uids_per_query)
    ]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    """Yield ``items`` in lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def study_identifier(keys: QueryKeys) -> Dataset:
    """Return the first STUDY-level identifier of a Study Root query."""
    return level_identifiers(keys, STUDY, {})[0]


def series_identifier(keys: QueryKeys, StudyInstanceUID: str) -> Dataset:
    """Return the first SERIES-level identifier of a query within one study."""
    return level_identifiers(keys, SERIES, {"StudyInstanceUID": StudyInstanceUID})[0]


def identifier(level: str, charset: str, keys: Mapping[str, str]) -> Dataset:
    """Return an identifier of ``level`` holding ``keys``, in ``charset``."""
    ds = Dataset()
    terms = charset_terms(charset)
    ds.SpecificCharacterSet = terms if len(terms) > 1 else terms[0]
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        ds.add_new(keyword, keyword_vr(keyword), value or None)
    return ds
