"""C-ECHO the PACS before anything else, so that an unreachable PACS is one clear error.

The association is this package's own (:mod:`pacscommon.requested`): a pull
by C-MOVE loads neither pynetdicom nor pydicom.
"""

import logging

from pacscommon.channel import LinkEnded
from pacscommon.errors import AssociationAborted, StatusError
from pacscommon.peers import SUCCESS, Peer, Timeouts, release
from pacscommon.requested import request_association
from pacscommon.verification import VERIFICATION, send_c_echo

logger = logging.getLogger(__name__)


def echo(peer: Peer, timeouts: Timeouts) -> None:
    """C-ECHO the PACS; raise saying what to check if it does not answer."""
    assoc = request_association(peer, timeouts, [VERIFICATION])
    context = assoc.accepted_contexts[0]
    try:
        status = send_c_echo(assoc.channel(), context.context_id, timeouts.dimse)
    except LinkEnded as exc:
        raise AssociationAborted(
            f"C-ECHO of {peer}: no answer within --dimse-timeout ({exc}); check "
            "the port is the PACS's DICOM port"
        ) from exc
    finally:
        release(assoc)
    if status != SUCCESS:
        raise StatusError(
            f"C-ECHO of {peer} answered 0x{status:04X}; see the PACS's log", status
        )
    logger.info("C-ECHO of %s succeeded", peer)
