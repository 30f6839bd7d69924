"""Open associations with a PACS through pynetdicom (C-FIND, C-GET).

Where the PACS is, the timeouts and the statuses are in :mod:`pacscommon.peers`;
the C-ECHO and C-MOVE of a pull go over associations of
:mod:`pacscommon.requested`, without pynetdicom.

Every association this package opens sets TCP_NODELAY on its socket as soon as
the connection is made: pynetdicom leaves Nagle's algorithm on, and a request
sent as a command PDU then a data set PDU then waits for the peer's delayed ACK
(about 44 ms per request on loopback).
"""

import logging
import socket
from collections.abc import Sequence

import pynetdicom.ae
from pynetdicom import AE, Association, evt
from pynetdicom._globals import DEFAULT_MAX_LENGTH
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationSocket

from pacscommon.errors import (
    AssociationAborted,
    AssociationRejected,
    PeerUnreachable,
)
from pacscommon.logs import quiet_pynetdicom
from pacscommon.peers import (
    Peer,
    Timeouts,
    aborted_while_negotiating,
    rejected,
    unreachable,
)
from pacscommon.tls import client_context

logger = logging.getLogger(__name__)
quiet_pynetdicom()


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
    if not connected:
        return unreachable(peer)
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        return rejected(
            peer,
            getattr(rj, "result", None),
            getattr(rj, "result_source", None),
            getattr(rj, "diagnostic", None),
        )
    return aborted_while_negotiating(peer)


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
