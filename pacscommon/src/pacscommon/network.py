"""Open associations with a PACS, and name the statuses it answers with.

Every association this package opens sets TCP_NODELAY on its socket as soon as
the connection is made: pynetdicom leaves Nagle's algorithm on, and a request
sent as a command PDU then a data set PDU then waits for the peer's delayed ACK
(about 44 ms per request on loopback).
"""

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import pynetdicom.ae
from pynetdicom import AE, Association, evt
from pynetdicom._globals import DEFAULT_MAX_LENGTH
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationSocket

from pacscommon.errors import (
    AssociationAborted,
    AssociationRejected,
    InputError,
    PeerUnreachable,
)
from pacscommon.tls import TlsFiles, client_context

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


def set_nodelay(event: evt.Event) -> None:
    """Turn off Nagle's algorithm on the association's socket."""
    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


NODELAY_HANDLERS = [(evt.EVT_CONN_OPEN, set_nodelay)]


class _ClosingSocket(AssociationSocket):
    """An association socket that is closed even when its connect failed."""

    def _shutdown_socket(self) -> None:
        sock = self.socket
        super()._shutdown_socket()
        if sock is not None:
            sock.close()


# NOTE: pynetdicom's socket skips close() when shutdown() fails, as it does on
# a socket whose connect was refused, and the socket leaks; remove once
# pynetdicom closes it itself.
pynetdicom.ae.AssociationSocket = _ClosingSocket  # type: ignore[misc]


def make_ae(calling_aet: str, timeouts: Timeouts, ae_class: type[AE] = AE) -> AE:
    """Return an application entity with the given title and timeouts."""
    ae = ae_class(ae_title=calling_aet)
    ae.connection_timeout = timeouts.connect
    ae.acse_timeout = timeouts.acse
    ae.dimse_timeout = timeouts.dimse
    ae.network_timeout = timeouts.network
    return ae


def associate(
    ae: AE,
    peer: Peer,
    contexts: Sequence[PresentationContext] | None = None,
    ext_neg: list | None = None,
    evt_handlers: list | None = None,
    max_pdu: int = DEFAULT_MAX_LENGTH,
) -> Association:
    """Open an association with ``peer``, or raise saying why it failed.

    ``max_pdu`` is the longest PDU we ask the peer to send (0: no limit).
    """
    opened: list[bool] = []
    handlers = list(NODELAY_HANDLERS) + list(evt_handlers or [])
    handlers.append((evt.EVT_CONN_OPEN, lambda _: opened.append(True)))
    tls_args = (client_context(peer.tls), peer.host) if peer.tls else None
    assoc = ae.associate(
        peer.host,
        peer.port,
        contexts=list(contexts) if contexts else None,
        ae_title=peer.called_aet,
        ext_neg=ext_neg,
        evt_handlers=handlers,
        tls_args=tls_args,
        max_pdu=max_pdu,
    )
    if assoc.is_established:
        logger.info("association with %s established", peer)
        return assoc
    raise _association_error(assoc, peer, connected=bool(opened))


def _association_error(
    assoc: Association, peer: Peer, connected: bool
) -> AssociationRejected | AssociationAborted | PeerUnreachable:
    """Say why an association could not be established."""
    if not connected and peer.tls:
        return PeerUnreachable(
            f"cannot connect to {peer}: no connection or no TLS handshake; check "
            "the host and port, that the PACS speaks TLS there, and that its "
            "certificate is signed by --tls-ca"
        )
    if not connected:
        return PeerUnreachable(
            f"cannot connect to {peer}: nothing answered at that address; check "
            "the host and port, and that the PACS is running"
        )
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        result = getattr(rj, "result", None)
        reason = getattr(rj, "diagnostic", None)
        detail = _rejection_detail(getattr(rj, "result_source", None), reason)
        error = AssociationRejected(
            f"association with {peer} rejected ({detail}); check the called AE "
            f"title and that the PACS knows the calling AE {peer.calling_aet}"
        )
        error.transient = result == REJECTED_TRANSIENT  # type: ignore[attr-defined]
        return error
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


def release(assoc: Association) -> None:
    """Release ``assoc`` if it is still up; abort it if release fails."""
    if assoc.is_established:
        try:
            assoc.release()
        except Exception:  # noqa: BLE001 - teardown must not mask the real error
            logger.debug("release failed; aborting", exc_info=True)
            assoc.abort()


def keep_responses_for_requests(assoc: Association) -> None:
    """Stop an SCU association's reactor from taking DIMSE messages off its queue.

    Call it once, right after the association is established, on an association
    that only sends requests (C-FIND, C-MOVE, C-GET) and never serves the peer's.
    """
    # NOTE: pynetdicom 3.0.4's reactor polls the DIMSE queue with
    # get_msg(block=False) and tells send_*() it has paused by a flag it sets
    # *before* waiting at its checkpoint. A send_*() that reads the flag just
    # after the reactor passed the checkpoint sends its request while the
    # reactor is about to poll, and the reactor takes the first response and
    # drops it ("Received unexpected C-FIND service message", pynetdicom issue
    # #875): a match silently lost, or, if it was the final response, a wait
    # until the DIMSE timeout. The send_*() methods read with block=True, and
    # the C-STORE requests of a C-GET are read by send_c_get itself, so an SCU's
    # reactor has no message of its own to take. Remove once pynetdicom pauses
    # its reactor without that race.
    take = assoc.dimse.get_msg

    def get_msg(block: bool = False) -> tuple[int | None, object]:
        if not block:
            return None, None
        return take(block)

    assoc.dimse.get_msg = get_msg  # type: ignore[method-assign,assignment]
