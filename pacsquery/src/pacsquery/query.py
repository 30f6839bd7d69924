"""Run queries over one association: each level of the model, then merged rows.

A query walks its information model from the top: the matches of one level are
asked for their children, one C-FIND per parent (and per chunk of a long UID
list), down to its depth: SERIES, or STUDY for a row per study. Every query of
a run, a batch included, goes over the same association; a series (or study)
found twice is kept once, with every query that found it. A request already
answered in this run (the same level, parents and keys) is not sent again.
"""

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pynetdicom import Association
from pynetdicom.presentation import PresentationContext

from pacscommon.answerscan import ScannedAnswer
from pacscommon.dicomtext import TextDecoder
from pacscommon.errors import OperationError
from pacscommon.network import associate, make_ae
from pacscommon.peers import Peer, Timeouts, release
from pacscommon.requestor import DirectAE, DirectAssociation
from pacsquery.finder import FIND_MODELS, MODEL_NAMES, Finder, Match
from pacsquery.identifiers import UIDS_PER_QUERY, QueryKeys, level_identifiers
from pacsquery.levels import PATIENT, SERIES, STUDY, UNIQUE_KEYS, walked_levels
from pacsquery.values import same_name

logger = logging.getLogger(__name__)

#: One answer of one level, decoded: keyword to text.
Record = dict[str, str]


@dataclass
class QueryOutcome:
    """What a run found: one row per series (or per study), keyword to text."""

    rows: list[Record] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    found_by: dict[str, list[str]] = field(default_factory=dict)
    complete: bool = True
    requests: int = 0
    depth: str = SERIES

    @property
    def studies(self) -> int:
        """Return how many distinct studies the rows hold.

        A study that matched at STUDY level but has no series that matched
        the series filters is not one of them.
        """
        uids = (row.get("StudyInstanceUID", "") for row in self.rows)
        return len({uid for uid in uids if uid})

    @property
    def series_count(self) -> int:
        """Return how many series matched: the rows, or the studies' counts."""
        if self.depth == STUDY:
            return count_sum(self.rows, "NumberOfStudyRelatedSeries")
        return len(self.rows)

    @property
    def instance_count(self) -> int:
        """Return the sum of the rows' instance counts."""
        if self.depth == STUDY:
            return count_sum(self.rows, "NumberOfStudyRelatedInstances")
        return count_sum(self.rows, "NumberOfSeriesRelatedInstances")

    def row_uid(self, row: Record) -> str:
        """Return the UID of what a row stands for: its series, or its study."""
        return row.get(UNIQUE_KEYS[self.depth], "")


def count_sum(rows: Iterable[Record], keyword: str) -> int:
    """Return the sum of a count column, ignoring values that are not numbers."""
    counts = (row.get(keyword, "").strip() for row in rows)
    return sum(int(c) for c in counts if c.isdigit())


@dataclass
class Walk:
    """What one run's queries share: the finder, the outcome, answers so far."""

    finder: Finder
    outcome: QueryOutcome
    uids_per_query: int
    answered: dict[tuple[object, ...], list[Record]] = field(default_factory=dict)
    decoder: TextDecoder = field(default_factory=TextDecoder)


def run_queries(
    peer: Peer,
    timeouts: Timeouts,
    queries: Sequence[QueryKeys],
    uids_per_query: int = UIDS_PER_QUERY,
) -> QueryOutcome:
    """Run every query over one association; return their merged rows."""
    started = time.monotonic()
    model = queries[0].model
    ae = make_ae(peer.calling_aet, timeouts, DirectAE)
    ae.add_requested_context(FIND_MODELS[model])
    assoc = associate(ae, peer)
    try:
        context = find_context(assoc, peer, model)
        direct: DirectAssociation = assoc  # type: ignore[assignment]
        finder = Finder(direct, context, peer, timeouts)
        outcome = QueryOutcome(columns=merged_columns(queries), depth=queries[0].depth)
        walk = Walk(finder, outcome, uids_per_query)
        for keys in queries:
            descend(walk, keys, walked_levels(model, keys.depth), {}, {})
    finally:
        release(assoc)
    outcome = finish(walk.outcome, finder.requests)
    log_outcome(peer, outcome, time.monotonic() - started)
    return outcome


def merged_columns(queries: Iterable[QueryKeys]) -> tuple[str, ...]:
    """Return every query's columns, in order, each once."""
    return tuple(dict.fromkeys(kw for keys in queries for kw in keys.columns))


def find_context(assoc: Association, peer: Peer, model: str) -> PresentationContext:
    """Return the context of C-FIND in the model asked for, or raise if refused."""
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax == FIND_MODELS[model]:
            return cx
    other = "patient" if MODEL_NAMES[model] == "Study Root" else "study"
    raise OperationError(
        f"{peer} does not accept {MODEL_NAMES[model]} Query/Retrieve C-FIND; "
        f"check that it is a PACS with its query service on, or try "
        f"--query-model {other}"
    )


def descend(
    walk: Walk,
    keys: QueryKeys,
    levels: Sequence[str],
    parents: Mapping[str, str],
    inherited: Record,
) -> None:
    """Find the matches of ``levels[0]`` under ``parents``, then their children."""
    level, below = levels[0], levels[1:]
    records = find_level(walk, keys, level, parents)
    for record in sort_records(records, level):
        merged = {**inherited, **record}
        if not below:
            add_row(walk.outcome, keys, merged)
            continue
        unique = UNIQUE_KEYS[level]
        if not record.get(unique):
            logger.warning("skipped a %s answer without %s", level, unique)
            continue
        descend(walk, keys, below, {**parents, unique: record[unique]}, merged)


def find_level(
    walk: Walk, keys: QueryKeys, level: str, parents: Mapping[str, str]
) -> list[Record]:
    """Return the decoded matches of one level, each once, names checked."""
    level_keys = keys.levels[level]
    memo = (level, tuple(parents.items()), tuple(level_keys.items()))
    if memo in walk.answered:
        return walk.answered[memo]
    records: dict[str, Record] = {}
    for request in level_identifiers(keys, level, parents, walk.uids_per_query):
        answer = walk.finder.find(request, level_keys)
        walk.outcome.complete = walk.outcome.complete and answer.complete
        for match in answer.matches:
            record = decoded(match, level_keys, level, walk.decoder)
            if names_match(keys, level_keys, record, match):
                unique = record.get(UNIQUE_KEYS[level]) or str(id(match))
                records.setdefault(unique, record)
    kept = list(records.values())
    logger.debug("C-FIND %s under %s: %d matches", level, dict(parents), len(kept))
    walk.answered[memo] = kept
    return kept


def decoded(
    answer: Match,
    keywords: Iterable[str],
    level: str,
    decoder: TextDecoder | None = None,
) -> Record:
    """Return the text of each of ``keywords`` in an answer; never fail on bytes.

    An answer read from its bytes already holds its text. Otherwise pydicom
    decodes text with the answer's own SpecificCharacterSet (ISO 2022 code
    extensions and GB18030 included). Bytes it cannot decode, or a character
    set it does not know, give replacement characters and a warning.
    """
    if isinstance(answer, ScannedAnswer):
        return {keyword: answer.texts.get(keyword, "") for keyword in keywords}
    record, messages = (decoder or TextDecoder()).texts(answer, keywords)
    for message in messages:
        uid = record.get(UNIQUE_KEYS[level], "")
        logger.warning("%s answer %s: %s", level, uid, message)
    return record


def charset_of(answer: Match) -> list[str]:
    """Return the terms of an answer's SpecificCharacterSet."""
    if isinstance(answer, ScannedAnswer):
        return [answer.charset]
    value = answer.get("SpecificCharacterSet", "") or ""
    terms = [value] if isinstance(value, str) else list(value)
    return [str(term).strip() for term in terms]


def names_match(
    keys: QueryKeys, level_keys: Mapping[str, str], record: Record, answer: Match
) -> bool:
    """Return whether the answer holds each typed name, empty components aside."""
    typed = {kw: name for kw, name in keys.names.items() if kw in level_keys}
    if not typed:
        return True
    charset = charset_of(answer)
    return all(
        same_name(name, record.get(keyword, ""), charset)
        for keyword, name in typed.items()
    )


def add_row(outcome: QueryOutcome, keys: QueryKeys, merged: Record) -> None:
    """Add one row, unless an earlier query of the run found what it stands for."""
    uid = outcome.row_uid(merged)
    if not uid:
        unique = UNIQUE_KEYS[outcome.depth]
        logger.warning("skipped a %s answer without %s", outcome.depth.lower(), unique)
        return
    if uid in outcome.found_by:
        if keys.label not in outcome.found_by[uid]:
            outcome.found_by[uid].append(keys.label)
        return
    outcome.found_by[uid] = [keys.label]
    outcome.rows.append({kw: merged.get(kw, "") for kw in keys.columns})


def finish(outcome: QueryOutcome, requests: int) -> QueryOutcome:
    """Give every row every column of the run; count the requests sent."""
    outcome.rows = [
        {kw: row.get(kw, "") for kw in outcome.columns} for row in outcome.rows
    ]
    outcome.requests = requests
    return outcome


def log_outcome(peer: Peer, outcome: QueryOutcome, seconds: float) -> None:
    """Log the one INFO line of a run."""
    logger.info(
        "query of %s: %d studies, %d series, %d instances, %s, %d C-FINDs, %.2f s",
        peer,
        outcome.studies,
        outcome.series_count,
        outcome.instance_count,
        "complete" if outcome.complete else "cut short",
        outcome.requests,
        seconds,
    )


def sort_records(records: Iterable[Record], level: str) -> list[Record]:
    """Return a level's matches in an order that reruns repeat."""
    if level == PATIENT:
        return sorted(records, key=lambda r: (r.get("PatientID", ""), str(r)))
    if level == STUDY:
        return sorted(
            records,
            key=lambda r: (r.get("StudyDate", ""), r.get("StudyInstanceUID", "")),
        )
    return sorted(records, key=series_order)


def series_order(record: Record) -> tuple[int, str]:
    """Return the sort key of a series: its number, then its UID."""
    number = record.get("SeriesNumber", "").strip()
    rank = int(number) if number.lstrip("+-").isdigit() else 2**31
    return rank, record.get("SeriesInstanceUID", "")
