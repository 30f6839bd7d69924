"""Send C-FINDs over one association and check every final status.

Every C-FIND ends with a final status that is checked: success, a cancel (the
answer was cut short: the matches are kept and the outcome is incomplete), or a
failure (raised). An association that ends before the final status was dropped
or timed out; Orthanc, for one, accepts an association from a calling AE it
does not know and then aborts it at the first query.

The requests and responses go through the association's
:class:`~pacscommon.channel.Channel`, in this thread, not through pynetdicom's
message threads (see :mod:`pacscommon.requestor`). An answer whose asked
keywords can be read straight from its bytes is (:mod:`pacscommon.answerscan`);
any other is decoded by pydicom.
"""

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.presentation import PresentationContext

from pacscommon.answerscan import ScannedAnswer, WantedKeys, scan_answer, wanted_keys
from pacscommon.channel import TIMED_OUT, LinkEnded
from pacscommon.errors import AssociationAborted, StatusError
from pacscommon.peers import (
    CANCEL,
    IDENTIFIER_MISMATCH,
    OUT_OF_RESOURCES,
    SUCCESS,
    UNABLE_TO_PROCESS,
    Peer,
    Timeouts,
)
from pacscommon.queries import FindResponse, send_c_find
from pacscommon.requestor import DirectAssociation
from pacsquery.levels import PATIENT_ROOT, STUDY_ROOT

logger = logging.getLogger(__name__)

#: The C-FIND SOP class of each information model (PS3.4 C.6).
FIND_MODELS = {
    STUDY_ROOT: "1.2.840.10008.5.1.4.1.2.2.1",
    PATIENT_ROOT: "1.2.840.10008.5.1.4.1.2.1.1",
}
#: The name of each information model, for messages.
MODEL_NAMES = {STUDY_ROOT: "Study Root", PATIENT_ROOT: "Patient Root"}

# PS3.4 C.4.1.1.4: C-FIND failure statuses
_FAILURES = {
    OUT_OF_RESOURCES: "out of resources",
    IDENTIFIER_MISMATCH: "identifier does not match SOP class",
    UNABLE_TO_PROCESS: "unable to process",
}


#: One match: its keywords' text read from its bytes, or decoded by pydicom.
Match = ScannedAnswer | Dataset


@dataclass(frozen=True)
class FindAnswer:
    """The matches of one C-FIND, and whether the peer sent them all."""

    matches: list[Match]
    complete: bool


class Finder:
    """Send C-FINDs over one association and check their statuses."""

    def __init__(
        self,
        assoc: DirectAssociation,
        context: PresentationContext,
        peer: Peer,
        timeouts: Timeouts,
    ) -> None:
        try:
            self.channel = assoc.channel()
        except LinkEnded as ended:
            raise AssociationAborted(
                f"the association with {peer} ended before the first C-FIND "
                f"({ended}); check the PACS's log"
            ) from None
        self.context = context
        self.peer = peer
        self.timeouts = timeouts
        self.requests = 0
        # What to read of the answers, for each list of keywords asked so far.
        self.wanted: dict[tuple[str, ...], WantedKeys | None] = {}

    def find(self, identifier: Dataset, keywords: Iterable[str] = ()) -> FindAnswer:
        """Send one C-FIND; return its matches once its final status is in.

        A match is read from its bytes when each of ``keywords`` can be, and
        decoded by pydicom otherwise (or when no keywords are given).
        """
        self.requests += 1
        wanted = self._wanted(tuple(keywords))
        with warnings.catch_warnings(record=True) as caught:
            # pydicom warns (and replaces) when an answer's character set or
            # bytes do not decode; say so in the log, never on its own.
            warnings.simplefilter("always")
            answer = self._answers(identifier, wanted)
        for message in dict.fromkeys(str(w.message) for w in caught):
            logger.warning("C-FIND answers from %s: %s", self.peer, message)
        return answer

    def _wanted(self, keywords: tuple[str, ...]) -> WantedKeys | None:
        """Return what to read of answers for ``keywords``, looked up once."""
        if keywords not in self.wanted:
            self.wanted[keywords] = wanted_keys(keywords) if keywords else None
        return self.wanted[keywords]

    def _answers(self, identifier: Dataset, wanted: WantedKeys | None) -> FindAnswer:
        """Collect the answers to one C-FIND and check its final status."""
        level = str(identifier.QueryRetrieveLevel)
        matches: list[Match] = []
        responses = send_c_find(
            self.channel, self.context, identifier, self.timeouts.dimse
        )
        try:
            for rsp in responses:
                if rsp.pending:
                    match = read_match(rsp, wanted)
                    if match is not None:
                        matches.append(match)
                    continue
                return self._final(level, rsp.status, rsp.error_comment, matches)
        except LinkEnded as ended:
            raise self._dropped(level, len(matches), ended) from None
        raise self._dropped(level, len(matches), LinkEnded("closed"))

    def _final(
        self, level: str, code: int, comment: str, matches: list[Match]
    ) -> FindAnswer:
        """Return the matches of a C-FIND that ended well, or raise its failure."""
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
        raise self._refused(level, code, comment)

    def _dropped(
        self, level: str, answers: int, ended: LinkEnded
    ) -> AssociationAborted:
        """Say why an answer stopped without a final status."""
        logger.debug("C-FIND %s at %s: %s (%s)", level, self.peer, ended, ended.outcome)
        if ended.outcome == TIMED_OUT:
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

    def _refused(self, level: str, code: int, comment: str) -> StatusError:
        """Say which failure status the peer answered with."""
        name = _FAILURES.get(code)
        if name is None:
            in_range = 0xC000 <= code <= 0xCFFF
            name = _FAILURES[UNABLE_TO_PROCESS] if in_range else "unknown status"
        detail = f": {comment}" if comment else ""
        return StatusError(
            f"{self.peer} refused the {level}-level C-FIND with status "
            f"0x{code:04X} ({name}){detail}; check the filters and the PACS's log",
            code,
        )


def read_match(rsp: FindResponse, wanted: WantedKeys | None) -> Match | None:
    """Return a pending response's match: read from its bytes, or by pydicom."""
    syntax = rsp.syntax
    scannable = syntax.is_little_endian and not syntax.is_deflated
    if wanted is not None and rsp.data is not None and scannable:
        scanned = scan_answer(rsp.data, syntax.is_implicit_VR, wanted)
        if scanned is not None:
            return scanned
    return rsp.identifier
