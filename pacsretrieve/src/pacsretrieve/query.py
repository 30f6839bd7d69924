"""What the pull asks the PACS before retrieving: C-ECHO and a few C-FINDs.

C-ECHO first, so an unreachable PACS is one clear error; SERIES-level C-FIND to
learn whether every series of a study was chosen (then one study-level retrieve
serves); IMAGE-level C-FIND for the SOP classes a C-GET must offer to store.
"""

import logging

from pydicom.dataset import Dataset
from pynetdicom import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from pacscommon.errors import AssociationAborted, StatusError
from pacscommon.network import (
    PENDING,
    PENDING_WARNING,
    SUCCESS,
    Peer,
    Timeouts,
    associate,
    keep_responses_for_requests,
    make_ae,
    release,
)

logger = logging.getLogger(__name__)

FIND_MODEL = StudyRootQueryRetrieveInformationModelFind


def echo(peer: Peer, timeouts: Timeouts) -> None:
    """C-ECHO the PACS; raise saying what to check if it does not answer."""
    ae = make_ae(peer.calling_aet, timeouts)
    ae.add_requested_context(Verification)
    assoc = associate(ae, peer)
    keep_responses_for_requests(assoc)
    try:
        status = assoc.send_c_echo()
    finally:
        release(assoc)
    if "Status" not in status:
        raise AssociationAborted(
            f"C-ECHO of {peer}: no answer within --dimse-timeout; check the "
            "port is the PACS's DICOM port"
        )
    if status.Status != SUCCESS:
        raise StatusError(
            f"C-ECHO of {peer} answered 0x{status.Status:04X}; see the PACS's log",
            int(status.Status),
        )
    logger.info("C-ECHO of %s succeeded", peer)


def open_find(peer: Peer, timeouts: Timeouts) -> Association:
    """Open an association for C-FIND requests."""
    ae = make_ae(peer.calling_aet, timeouts)
    ae.add_requested_context(FIND_MODEL)
    assoc = associate(ae, peer)
    keep_responses_for_requests(assoc)
    return assoc


def find_values(
    assoc: Association, identifier: Dataset, keyword: str, peer: Peer
) -> set[str]:
    """Return the values of ``keyword`` in every match of a C-FIND."""
    values: set[str] = set()
    what = f"C-FIND at {identifier.QueryRetrieveLevel} level"
    for status, match in assoc.send_c_find(identifier, FIND_MODEL):
        if "Status" not in status:
            raise AssociationAborted(
                f"{what}: {peer} sent no status (association aborted or no "
                f"answer in time); is the calling AE {peer.calling_aet} in the "
                "PACS's DicomModalities?"
            )
        if status.Status in (PENDING, PENDING_WARNING):
            if match is not None and match.get(keyword):
                values.add(str(match.get(keyword)).strip())
            continue
        if status.Status != SUCCESS:
            raise StatusError(
                f"{what} refused by {peer}: status 0x{status.Status:04X}",
                int(status.Status),
            )
    return values


def series_of_study(assoc: Association, StudyInstanceUID: str, peer: Peer) -> set[str]:
    """Return the SeriesInstanceUIDs the PACS holds for a study."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = StudyInstanceUID
    ds.SeriesInstanceUID = ""
    return find_values(assoc, ds, "SeriesInstanceUID", peer)


def sop_classes_of_series(
    assoc: Association, StudyInstanceUID: str, SeriesInstanceUID: str, peer: Peer
) -> set[str]:
    """Return the SOP classes of the instances the PACS holds for a series."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID = StudyInstanceUID
    ds.SeriesInstanceUID = SeriesInstanceUID
    ds.SOPInstanceUID = ""
    ds.SOPClassUID = ""
    return find_values(assoc, ds, "SOPClassUID", peer)
