"""What the pull asks the PACS before retrieving, after its C-ECHO: a few C-FINDs.

SERIES-level C-FIND to learn whether every series of a study was chosen (then
one study-level retrieve serves); IMAGE-level C-FIND for the SOP classes a
C-GET must offer to store.
The C-FINDs go through the association's own channel in this thread
(:mod:`pacscommon.requestor`): an IMAGE-level answer has a match per instance.
"""

import logging

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

from pacscommon.channel import LinkEnded
from pacscommon.errors import AssociationAborted, OperationError, StatusError
from pacscommon.network import associate, make_ae
from pacscommon.peers import SUCCESS, Peer, Timeouts
from pacscommon.queries import send_c_find
from pacscommon.requestor import DirectAE, DirectAssociation
from pacsretrieve.contexts import CLASSES_IN_EVERY_SYNTAX

logger = logging.getLogger(__name__)

FIND_MODEL = StudyRootQueryRetrieveInformationModelFind


def open_find(peer: Peer, timeouts: Timeouts) -> Association:
    """Open an association for C-FIND requests."""
    ae = make_ae(peer.calling_aet, timeouts, DirectAE)
    ae.add_requested_context(FIND_MODEL)
    return associate(ae, peer)


def find_values(
    assoc: Association, identifier: Dataset, keyword: str, peer: Peer
) -> set[str]:
    """Return the values of ``keyword`` in every match of a C-FIND."""
    values: set[str] = set()
    what = f"C-FIND at {identifier.QueryRetrieveLevel} level"
    direct: DirectAssociation = assoc  # type: ignore[assignment]
    context = _find_context(assoc, peer)
    timeout = float(assoc.dimse_timeout or 30.0)
    try:
        for rsp in send_c_find(direct.channel(), context, identifier, timeout):
            match = rsp.identifier
            if rsp.pending and match is not None:
                values.update(_values(match, keyword))
            elif not rsp.pending and rsp.status != SUCCESS:
                raise StatusError(
                    f"{what} refused by {peer}: status 0x{rsp.status:04X}",
                    rsp.status,
                )
    except LinkEnded as exc:
        raise AssociationAborted(
            f"{what}: {peer} sent no status (association aborted or no "
            f"answer in time); is the calling AE {peer.calling_aet} in the "
            "PACS's DicomModalities?"
        ) from exc
    return values


def _values(match: Dataset, keyword: str) -> set[str]:
    """Return the values of ``keyword`` in a match, each once."""
    value = match.get(keyword)
    if not value:
        return set()
    many = value if isinstance(value, MultiValue | list) else [value]
    return {str(v).strip() for v in many if str(v).strip()}


def _find_context(assoc: Association, peer: Peer) -> PresentationContext:
    """Return the accepted context of Study Root C-FIND, or raise."""
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax == FIND_MODEL:
            return cx
    raise OperationError(
        f"{peer} does not accept Study Root Query/Retrieve C-FIND; check that it "
        "is a PACS with its query service on"
    )


def series_of_study(assoc: Association, StudyInstanceUID: str, peer: Peer) -> set[str]:
    """Return the SeriesInstanceUIDs the PACS holds for a study."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = StudyInstanceUID
    ds.SeriesInstanceUID = ""
    return find_values(assoc, ds, "SeriesInstanceUID", peer)


def sop_classes_of_series(
    assoc: Association,
    StudyInstanceUID: str,
    SeriesInstanceUID: str,
    peer: Peer,
    most: int = CLASSES_IN_EVERY_SYNTAX,
) -> set[str]:
    """Return SOP classes that cover the instances the PACS holds for a series.

    A PACS may answer the optional study-level key SOPClassesInStudy from its
    own records (Orthanc does), in one answer where an IMAGE-level C-FIND has
    one per instance. Those of the whole study serve when they are at most
    ``most``; when there are more, or the PACS leaves them empty or refuses
    the key, the series' own are asked for.
    """
    try:
        in_study = sop_classes_of_study(assoc, StudyInstanceUID, peer)
    except StatusError as exc:
        logger.debug("SOPClassesInStudy not answered: %s", exc)
        in_study = set()
    if in_study and len(in_study) <= most:
        return in_study
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID = StudyInstanceUID
    ds.SeriesInstanceUID = SeriesInstanceUID
    ds.SOPInstanceUID = ""
    ds.SOPClassUID = ""
    return find_values(assoc, ds, "SOPClassUID", peer)


def sop_classes_of_study(
    assoc: Association, StudyInstanceUID: str, peer: Peer
) -> set[str]:
    """Return the SOPClassesInStudy the PACS reports (none if it does not)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = StudyInstanceUID
    ds.SOPClassesInStudy = ""
    return find_values(assoc, ds, "SOPClassesInStudy", peer)
