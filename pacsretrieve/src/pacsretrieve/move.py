"""Ask the PACS to send a series or a study (C-MOVE or C-GET), and read its answer.

Both services answer with pending responses that count sub-operations, then a
final response (PS3.4 C.4.2.1.5, C.4.3.1.4); ``follow`` reads them the same way
for both, and ``check_final`` says what a final status means for the user.
"""

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pacscommon.errors import AssociationAborted, OperationError, StatusError
from pacscommon.moves import RetrieveKeys, send_c_move
from pacscommon.peers import (
    CANCEL,
    IDENTIFIER_MISMATCH,
    MOVE_DESTINATION_UNKNOWN,
    OUT_OF_RESOURCES,
    OUT_OF_RESOURCES_MATCHES,
    OUT_OF_RESOURCES_SUBOPS,
    PENDING,
    PENDING_WARNING,
    SUCCESS,
    UNABLE_TO_PROCESS,
    WARNING_SUBOPS,
    Peer,
)
from pacscommon.requested import RequestedAssociation

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from pacscommon.retrievals import GetSession

logger = logging.getLogger(__name__)

# PS3.4 C.6.2.1: Study Root Query/Retrieve Information Model, MOVE and GET
MOVE_MODEL = "1.2.840.10008.5.1.4.1.2.2.2"
GET_MODEL = "1.2.840.10008.5.1.4.1.2.2.3"

# The statuses that end the sub-operations with some of them done.
_FINISHED = (SUCCESS, WARNING_SUBOPS, CANCEL)
PROGRESS_EVERY = 2.0  # seconds between progress lines of one retrieve
_OUT_OF_RESOURCES = (
    OUT_OF_RESOURCES,
    OUT_OF_RESOURCES_MATCHES,
    OUT_OF_RESOURCES_SUBOPS,
)


@dataclass
class MoveOutcome:
    """What the PACS reported of one C-MOVE or C-GET."""

    status: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    pending: int = 0  # pending responses seen
    failed_instances: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        """Return how many instances the PACS says it stored at the destination."""
        return self.completed + self.warning


def retrieve_identifier(
    level: str, StudyInstanceUID: str, SeriesInstanceUID: str | None
) -> "Dataset":
    """Return the identifier of a study- or series-level retrieve (PS3.4 C.4.2.2)."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.StudyInstanceUID = StudyInstanceUID
    if SeriesInstanceUID is not None:
        ds.SeriesInstanceUID = SeriesInstanceUID
    return ds


def send_move(
    assoc: RequestedAssociation,
    identifier: RetrieveKeys,
    destination: str,
    what: str,
    peer: Peer,
    timeout: float,
) -> MoveOutcome:
    """C-MOVE ``identifier`` to ``destination``; return what the PACS reported.

    ``timeout`` bounds the wait for each response.
    """
    context = next(
        (cx for cx in assoc.accepted_contexts if cx.abstract_syntax == MOVE_MODEL),
        None,
    )
    if context is None:
        raise OperationError(
            f"{peer} accepted no Study Root C-MOVE context; check that it is a "
            "PACS with its retrieve service on"
        )
    responses = send_c_move(assoc.channel(), context, identifier, destination, timeout)
    return follow(responses, what, peer)


def send_get(
    session: "GetSession", identifier: "Dataset", what: str, peer: Peer
) -> MoveOutcome:
    """C-GET ``identifier`` in ``session``; return what the PACS reported."""
    responses = session.send_c_get(identifier, GET_MODEL)
    return follow(responses, what, peer)


def follow(responses: Iterator[tuple[Any, Any]], what: str, peer: Peer) -> MoveOutcome:
    """Read every response of a retrieve; raise if the association was lost."""
    outcome = MoveOutcome()
    logged = time.monotonic()
    for status, identifier in responses:
        if "Status" not in status:
            # pynetdicom yields an empty status on abort, on a dropped
            # connection, and when no response came within the DIMSE timeout.
            raise AssociationAborted(
                f"{what}: {peer} sent no status (association aborted, dropped, "
                "or no answer within --dimse-timeout); is the calling AE "
                f"{peer.calling_aet} in the PACS's DicomModalities?"
            )
        _count(outcome, status)
        if status.Status in (PENDING, PENDING_WARNING):
            outcome.pending += 1
            if time.monotonic() - logged >= PROGRESS_EVERY:
                logged = time.monotonic()
                _log_progress(what, outcome)
            continue
        outcome.status = int(status.Status)
        outcome.failed_instances = _failed_list(identifier)
    return outcome


def _log_progress(what: str, outcome: MoveOutcome) -> None:
    """Log how many sub-operations are done of how many in all."""
    done = outcome.completed + outcome.warning
    in_all = done + outcome.failed + outcome.remaining
    logger.info("%s: %d of %d instances sent", what, done, in_all)


def _count(outcome: MoveOutcome, status: Any) -> None:
    """Take the sub-operation counts of a response (PS3.4 C.4.2.1.5).

    A final failure response may carry counts of 0, as Orthanc's does, after
    pending responses that counted instances sent: the counts done never go
    down, so the highest seen is kept.
    """
    for keyword, name in (
        ("NumberOfCompletedSuboperations", "completed"),
        ("NumberOfFailedSuboperations", "failed"),
        ("NumberOfWarningSuboperations", "warning"),
    ):
        value = status.get(keyword)
        if value is not None and value != "":
            setattr(outcome, name, max(getattr(outcome, name), int(value)))
    remaining = status.get("NumberOfRemainingSuboperations")
    if remaining is not None and remaining != "":
        outcome.remaining = int(remaining)
    elif status.get("Status") not in (PENDING, PENDING_WARNING):
        if status.get("Status") in _FINISHED:
            outcome.remaining = 0


def _failed_list(identifier: Any) -> list[str]:
    """Return the SOP instances a final response lists as failed."""
    if identifier is None or "FailedSOPInstanceUIDList" not in identifier:
        return []
    value = identifier.FailedSOPInstanceUIDList
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def check_final(
    outcome: MoveOutcome, what: str, destination: str | None, peer: Peer
) -> None:
    """Raise unless the final status says the sub-operations ran.

    ``destination`` is the move destination, ``None`` for a C-GET.
    """
    status = outcome.status
    if status in _FINISHED:
        return
    refused = f"{what} refused by {peer}"
    if status is None:
        raise AssociationAborted(f"{refused}: no final response came")
    if destination is not None and status == MOVE_DESTINATION_UNKNOWN:
        raise StatusError(
            f"{refused} (status 0x{status:04X}): destination {destination} unknown "
            "to the PACS; add it to the PACS's DicomModalities",
            status,
        )
    if destination is not None and _destination_unknown(outcome):
        # Orthanc answers so for an unknown destination and for a series it
        # no longer holds alike.
        raise StatusError(
            f"{refused} (status 0x{status:04X}) before sending anything: "
            f"destination {destination} unknown or unreachable, or the series is "
            "no longer in the PACS; check the PACS's DicomModalities and that the "
            "listener is up, or query again",
            status,
        )
    raise StatusError(f"{refused}: {_failure_text(outcome)}", status)


def _destination_unknown(outcome: MoveOutcome) -> bool:
    """Return whether a failure says the PACS could not reach the destination."""
    # Orthanc answers 0xC000, not 0xA801, for a destination it does not know,
    # with no pending response before it.
    status = outcome.status or 0
    nothing_sent = outcome.delivered == 0 and outcome.pending == 0
    return status == MOVE_DESTINATION_UNKNOWN or (
        status & 0xF000 == UNABLE_TO_PROCESS and nothing_sent
    )


def _failure_text(outcome: MoveOutcome) -> str:
    """Return what a failure status means, with what was done before it."""
    status = outcome.status or 0
    if status in _OUT_OF_RESOURCES:
        text = f"the PACS is out of resources (0x{status:04X}); try again later"
    elif status == IDENTIFIER_MISMATCH:
        text = f"identifier does not match SOP class (0x{status:04X})"
    else:
        text = f"failure status 0x{status:04X}; see the PACS's log"
    if outcome.delivered or outcome.failed:
        text += (
            f", after {outcome.delivered} instances sent and {outcome.failed} failed"
        )
    return text
