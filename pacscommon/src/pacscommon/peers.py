"""Where a PACS is, how long to wait for it, and the statuses it answers with.

Nothing here imports pynetdicom or pydicom: a program that only moves series
(pacsretrieve's C-MOVE path) starts without loading them.
"""

import logging
from dataclasses import dataclass
from typing import Protocol

from pacscommon.errors import (
    AssociationAborted,
    AssociationRejected,
    InputError,
    PeerUnreachable,
)
from pacscommon.tls import TlsFiles

logger = logging.getLogger(__name__)

# PS3.7 C: general statuses
SUCCESS = 0x0000
CANCEL = 0xFE00  # matching or sub-operations ended by a cancel
PENDING = 0xFF00
PENDING_WARNING = 0xFF01  # pending, optional keys not supported
# PS3.4 C.4.2.1.5 and C.4.3.1.4: retrieve statuses
WARNING_SUBOPS = 0xB000  # sub-operations complete, one or more failed
MOVE_DESTINATION_UNKNOWN = 0xA801
OUT_OF_RESOURCES = 0xA700
OUT_OF_RESOURCES_MATCHES = 0xA701  # unable to calculate number of matches
OUT_OF_RESOURCES_SUBOPS = 0xA702  # unable to perform sub-operations
IDENTIFIER_MISMATCH = 0xA900  # identifier does not match SOP class
UNABLE_TO_PROCESS = 0xC000  # the 0xCxxx range: unable to process

# PS3.8 9.3.4: A-ASSOCIATE-RJ results and reasons that a retry may cure
REJECTED_TRANSIENT = 0x02
MAX_AE_TITLE = 16


@dataclass(frozen=True)
class Peer:
    """Where a PACS is and what it is called."""

    host: str
    port: int
    called_aet: str
    calling_aet: str
    tls: TlsFiles | None = None

    def __str__(self) -> str:
        over = " over TLS" if self.tls else ""
        return f"{self.called_aet} at {self.host}:{self.port}{over}"


@dataclass(frozen=True)
class Timeouts:
    """The timeouts, in seconds, of one association."""

    connect: float = 10.0
    acse: float = 30.0
    dimse: float = 60.0
    network: float = 60.0


def check_ae_title(value: str, what: str) -> str:
    """Return ``value`` if it is a valid AE title, else raise an input error."""
    text = value.strip()
    if not text or len(text) > MAX_AE_TITLE or "\\" in text or not text.isascii():
        raise InputError(
            f"{what} {value!r} is not a valid AE title: use 1 to 16 ASCII "
            "characters without a backslash"
        )
    if any(not c.isprintable() for c in text):
        raise InputError(f"{what} {value!r} holds control characters")
    return text


def check_port(value: int, what: str) -> int:
    """Return ``value`` if it is a TCP port number, else raise an input error."""
    if not 1 <= value <= 65535:
        raise InputError(f"{what} {value} is not a TCP port: use 1 to 65535")
    return value


def unreachable(peer: Peer) -> PeerUnreachable:
    """Say that no connection (or no TLS handshake) could be made."""
    if peer.tls:
        return PeerUnreachable(
            f"cannot connect to {peer}: no connection or no TLS handshake; check "
            "the host and port, that the PACS speaks TLS there, and that its "
            "certificate is signed by --tls-ca"
        )
    return PeerUnreachable(
        f"cannot connect to {peer}: nothing answered at that address; check "
        "the host and port, and that the PACS is running"
    )


def rejected(
    peer: Peer, result: int | None, source: int | None, reason: int | None
) -> AssociationRejected:
    """Say that the PACS answered with an A-ASSOCIATE-RJ, and whether to retry."""
    detail = _rejection_detail(source, reason)
    error = AssociationRejected(
        f"association with {peer} rejected ({detail}); check the called AE "
        f"title and that the PACS knows the calling AE {peer.calling_aet}"
    )
    error.transient = result == REJECTED_TRANSIENT  # type: ignore[attr-defined]
    return error


def aborted_while_negotiating(peer: Peer) -> AssociationAborted:
    """Say that the PACS aborted, closed or went silent before accepting."""
    return AssociationAborted(
        f"association with {peer} aborted or not answered while negotiating; "
        "check that the port is the PACS's DICOM port, the AE titles, and the "
        "PACS's log"
    )


def _rejection_detail(source: int | None, reason: int | None) -> str:
    """Return a short text for an A-ASSOCIATE-RJ source and reason."""
    # PS3.8 9.3.4: source 1 is the service user, reasons 2, 3 and 7 name AEs
    user_reasons = {
        1: "no reason given",
        2: "application context not supported",
        3: "calling AE title not recognized",
        7: "called AE title not recognized",
    }
    if source == 1 and reason in user_reasons:
        return user_reasons[reason]
    if source in (2, 3):
        return f"by the service provider, reason {reason}"
    return f"source {source}, reason {reason}"


class Association(Protocol):
    """What ending an association needs: pynetdicom's, or ours."""

    @property
    def is_established(self) -> bool: ...

    def release(self) -> None: ...

    def abort(self) -> None: ...


def release(assoc: Association) -> None:
    """Release ``assoc`` if it is still up; abort it if release fails."""
    if assoc.is_established:
        try:
            assoc.release()
        except Exception:  # noqa: BLE001 - teardown must not mask the real error
            logger.debug("release failed; aborting", exc_info=True)
            assoc.abort()
