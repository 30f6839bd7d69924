"""Run a query over one association: the studies first, then each study's series.

Every C-FIND ends with a final status that is checked: success, a cancel (the
answer was cut short: the matches are kept and the outcome is incomplete), or a
failure (raised). An empty status is an association that was dropped or timed
out; Orthanc, for one, accepts an association from a calling AE it does not
know and then aborts it at the first query.
"""

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pynetdicom import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

from pacscommon.dicomtext import element_text
from pacscommon.errors import AssociationAborted, OperationError, StatusError
from pacscommon.network import (
    CANCEL,
    IDENTIFIER_MISMATCH,
    OUT_OF_RESOURCES,
    PENDING,
    PENDING_WARNING,
    SUCCESS,
    UNABLE_TO_PROCESS,
    Peer,
    Timeouts,
    associate,
    keep_responses_for_requests,
    make_ae,
    release,
)
from pacsquery.identifiers import QueryKeys, series_identifier, study_identifier

logger = logging.getLogger(__name__)

FIND_MODEL = StudyRootQueryRetrieveInformationModelFind

# PS3.4 C.4.1.1.4: C-FIND failure statuses
_FAILURES = {
    OUT_OF_RESOURCES: "out of resources",
    IDENTIFIER_MISMATCH: "identifier does not match SOP class",
    UNABLE_TO_PROCESS: "unable to process",
}
# A dropped association within this share of the DIMSE timeout is taken for a
# timeout rather than for the peer's doing.
_TIMEOUT_SHARE = 0.9


@dataclass(frozen=True)
class FindAnswer:
    """The matches of one C-FIND, and whether the peer sent them all."""

    matches: list[Dataset]
    complete: bool


@dataclass
class QueryOutcome:
    """What a query found: one row per series, keyword to text."""

    rows: list[dict[str, str]] = field(default_factory=list)
    studies: int = 0
    complete: bool = True

    @property
    def instance_count(self) -> int:
        """Return the sum of the series' NumberOfSeriesRelatedInstances."""
        counts = (row.get("NumberOfSeriesRelatedInstances", "") for row in self.rows)
        return sum(int(c) for c in counts if c.strip().isdigit())


class Finder:
    """Send C-FINDs over one association and check their statuses."""

    def __init__(self, assoc: Association, peer: Peer, timeouts: Timeouts) -> None:
        self.assoc = assoc
        self.peer = peer
        self.timeouts = timeouts

    def find(self, identifier: Dataset) -> FindAnswer:
        """Send one C-FIND; return its matches once its final status is in."""
        level = str(identifier.QueryRetrieveLevel)
        matches: list[Dataset] = []
        waited_since = time.monotonic()
        for status, answer in self.assoc.send_c_find(identifier, FIND_MODEL):
            code = status.get("Status")
            if code is None:
                waited = time.monotonic() - waited_since
                raise self._dropped(level, len(matches), waited)
            if code in (PENDING, PENDING_WARNING):
                if answer is not None:
                    matches.append(answer)
                waited_since = time.monotonic()
                continue
            if code == SUCCESS:
                return FindAnswer(matches, complete=True)
            if code == CANCEL:
                logger.warning(
                    "C-FIND %s at %s cut short (0xFE00) after %d matches",
                    level,
                    self.peer,
                    len(matches),
                )
                return FindAnswer(matches, complete=False)
            raise self._refused(level, code, status)
        raise self._dropped(level, len(matches), 0.0)

    def _dropped(self, level: str, answers: int, waited: float) -> AssociationAborted:
        """Say why an answer stopped without a final status."""
        if waited >= _TIMEOUT_SHARE * self.timeouts.dimse:
            return AssociationAborted(
                f"no answer from {self.peer} to the {level}-level C-FIND within "
                f"{self.timeouts.dimse:g} s; the PACS may be busy: raise "
                "--dimse-timeout or try again later"
            )
        after = f" after {answers} answers" if answers else ""
        return AssociationAborted(
            f"the PACS dropped the association during the {level}-level C-FIND"
            f"{after}: is the calling AE {self.peer.calling_aet} in its "
            f"DicomModalities? ({self.peer})"
        )

    def _refused(self, level: str, code: int, status: Dataset) -> StatusError:
        """Say which failure status the peer answered with."""
        name = _FAILURES.get(code)
        if name is None:
            in_range = 0xC000 <= code <= 0xCFFF
            name = _FAILURES[UNABLE_TO_PROCESS] if in_range else "unknown status"
        comment = status.get("ErrorComment")
        detail = f": {comment}" if comment else ""
        return StatusError(
            f"{self.peer} refused the {level}-level C-FIND with status "
            f"0x{code:04X} ({name}){detail}; check the filters and the PACS's log",
            code,
        )


def run_query(peer: Peer, timeouts: Timeouts, keys: QueryKeys) -> QueryOutcome:
    """Ask ``peer`` for every series that matches ``keys``, over one association."""
    started = time.monotonic()
    ae = make_ae(peer.calling_aet, timeouts)
    ae.add_requested_context(FIND_MODEL)
    assoc = associate(ae, peer)
    keep_responses_for_requests(assoc)
    try:
        check_find_accepted(assoc, peer)
        outcome = find_series(Finder(assoc, peer, timeouts), keys)
    finally:
        release(assoc)
    logger.info(
        "query of %s: %d studies, %d series, %d instances, %s, %.2f s",
        peer,
        outcome.studies,
        len(outcome.rows),
        outcome.instance_count,
        "complete" if outcome.complete else "cut short",
        time.monotonic() - started,
    )
    return outcome


def check_find_accepted(assoc: Association, peer: Peer) -> None:
    """Raise unless the peer accepted Study Root C-FIND."""
    accepted = {cx.abstract_syntax for cx in assoc.accepted_contexts}
    if FIND_MODEL not in accepted:
        raise OperationError(
            f"{peer} does not accept Study Root Query/Retrieve C-FIND; check that "
            "it is a PACS and that its query service is on"
        )


def find_series(finder: Finder, keys: QueryKeys) -> QueryOutcome:
    """Find the matching studies, then the matching series of each."""
    studies = finder.find(study_identifier(keys))
    logger.info("C-FIND STUDY at %s: %d studies", finder.peer, len(studies.matches))
    outcome = QueryOutcome(studies=len(studies.matches), complete=studies.complete)
    seen: set[str] = set()
    for study in sort_studies(studies.matches):
        StudyInstanceUID = element_text(study, "StudyInstanceUID") or ""
        if not StudyInstanceUID:
            logger.warning("skipped a study answer without StudyInstanceUID")
            continue
        series = finder.find(series_identifier(keys, StudyInstanceUID))
        logger.debug(
            "C-FIND SERIES of study %s: %d series",
            StudyInstanceUID,
            len(series.matches),
        )
        outcome.complete = outcome.complete and series.complete
        outcome.rows.extend(series_rows(study, series.matches, keys, seen))
    return outcome


def series_rows(
    study: Dataset, matches: Iterable[Dataset], keys: QueryKeys, seen: set[str]
) -> list[dict[str, str]]:
    """Return one row per new series of ``study``, with the study's attributes."""
    study_part = row_part(study, keys.study)
    rows = []
    for series in sort_series(matches):
        series_part = row_part(series, keys.series)
        uid = series_part.get("SeriesInstanceUID", "")
        if not uid or uid in seen:
            logger.warning("skipped a series answer without a new SeriesInstanceUID")
            continue
        seen.add(uid)
        merged = {**study_part, **series_part}
        rows.append({kw: merged.get(kw, "") for kw in keys.columns})
    return rows


def row_part(answer: Dataset, keywords: Mapping[str, str]) -> dict[str, str]:
    """Return the text of each of ``keywords`` in an answer, decoded."""
    # pydicom decodes text with the answer's own SpecificCharacterSet.
    return {kw: element_text(answer, kw) or "" for kw in keywords}


def sort_studies(matches: Iterable[Dataset]) -> list[Dataset]:
    """Return studies by date then UID, so that reruns give the same rows."""
    return sorted(
        matches,
        key=lambda ds: (
            element_text(ds, "StudyDate") or "",
            element_text(ds, "StudyInstanceUID") or "",
        ),
    )


def sort_series(matches: Iterable[Dataset]) -> list[Dataset]:
    """Return series by number then UID, so that reruns give the same rows."""

    def order(ds: Dataset) -> tuple[int, str]:
        number = (element_text(ds, "SeriesNumber") or "").strip()
        rank = int(number) if number.lstrip("+-").isdigit() else 2**31
        return rank, element_text(ds, "SeriesInstanceUID") or ""

    return sorted(matches, key=order)
