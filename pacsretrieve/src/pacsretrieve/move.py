"""Ask the PACS to send a series with C-MOVE, and read what it says it did."""

import logging
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pynetdicom import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelMove,
)

from pacscommon.errors import AssociationAborted, StatusError
from pacscommon.network import (
    CANCEL,
    IDENTIFIER_MISMATCH,
    MOVE_DESTINATION_UNKNOWN,
    OUT_OF_RESOURCES_MATCHES,
    OUT_OF_RESOURCES_SUBOPS,
    PENDING,
    PENDING_WARNING,
    SUCCESS,
    UNABLE_TO_PROCESS,
    WARNING_SUBOPS,
    Peer,
)
from pacsretrieve.selection import SeriesRequest

logger = logging.getLogger(__name__)

MOVE_MODEL = StudyRootQueryRetrieveInformationModelMove


@dataclass
class MoveOutcome:
    """What the PACS reported of one C-MOVE."""

    status: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    failed_instances: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        """Return how many instances the PACS says it stored at the destination."""
        return self.completed + self.warning


def move_identifier(request: SeriesRequest) -> Dataset:
    """Return the C-MOVE identifier of one series (PS3.4 C.4.2.1.4)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = request.StudyInstanceUID
    ds.SeriesInstanceUID = request.SeriesInstanceUID
    return ds


def send_move(
    assoc: Association, request: SeriesRequest, destination: str, peer: Peer
) -> MoveOutcome:
    """Move one series to ``destination``; raise if the PACS refused or dropped us."""
    outcome = MoveOutcome()
    responses = assoc.send_c_move(move_identifier(request), destination, MOVE_MODEL)
    for status, identifier in responses:
        if "Status" not in status:
            raise AssociationAborted(
                f"C-MOVE of series {request.SeriesInstanceUID}: {peer} sent no "
                "status (association aborted, dropped or timed out); is the "
                f"calling AE {peer.calling_aet} in the PACS's DicomModalities?"
            )
        _count(outcome, status)
        if status.Status in (PENDING, PENDING_WARNING):
            logger.debug(
                "series %s: %d completed, %d remaining",
                request.SeriesInstanceUID,
                outcome.completed,
                outcome.remaining,
            )
            continue
        outcome.status = int(status.Status)
        outcome.failed_instances = _failed_list(identifier)
    _check_final(outcome, request, destination, peer)
    return outcome


def _count(outcome: MoveOutcome, status: Dataset) -> None:
    """Copy the sub-operation counts of a response (PS3.4 C.4.2.1.5)."""
    outcome.completed = int(status.get("NumberOfCompletedSuboperations", 0) or 0)
    outcome.failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
    outcome.warning = int(status.get("NumberOfWarningSuboperations", 0) or 0)
    outcome.remaining = int(status.get("NumberOfRemainingSuboperations", 0) or 0)


def _failed_list(identifier: Dataset | None) -> list[str]:
    """Return the SOP instances a final response lists as failed."""
    if identifier is None or "FailedSOPInstanceUIDList" not in identifier:
        return []
    value = identifier.FailedSOPInstanceUIDList
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _check_final(
    outcome: MoveOutcome, request: SeriesRequest, destination: str, peer: Peer
) -> None:
    """Raise unless the final status says the sub-operations ran."""
    status = outcome.status
    if status in (SUCCESS, WARNING_SUBOPS, CANCEL):
        return
    what = f"C-MOVE of series {request.SeriesInstanceUID} refused by {peer}"
    if status is None:
        raise AssociationAborted(f"{what}: no final response came")
    if status == MOVE_DESTINATION_UNKNOWN or (
        status & 0xF000 == UNABLE_TO_PROCESS and outcome.delivered == 0
    ):
        # Orthanc answers 0xC000, not 0xA801, for a destination it does not know.
        raise StatusError(
            f"{what} (status 0x{status:04X}): destination {destination} unknown "
            "or unreachable; add it to the PACS's DicomModalities, and check the "
            "listener is up",
            status,
        )
    if status in (OUT_OF_RESOURCES_MATCHES, OUT_OF_RESOURCES_SUBOPS):
        raise StatusError(
            f"{what}: the PACS is out of resources (0x{status:04X})", status
        )
    if status == IDENTIFIER_MISMATCH:
        raise StatusError(f"{what}: identifier does not match SOP class", status)
    raise StatusError(f"{what}: failure status 0x{status:04X}", status)
