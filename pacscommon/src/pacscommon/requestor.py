"""Hand an association we requested from pynetdicom to a :class:`Channel`.

pynetdicom negotiates the association (titles, contexts, limits, TLS). Its two
reactor threads then hand every message between them, each polling every
millisecond, which costs a few milliseconds per C-FIND (bench/RESULTS.md). The
associations of a :class:`DirectAE` step aside once established instead: the
DUL thread parks right after it has processed the A-ASSOCIATE-AC (so that
nothing else reads the socket), the association's reactor thread waits without
polling, and the caller's own thread reads and writes the connection through
:meth:`DirectAssociation.channel`. Release and abort go through the channel,
and whichever way the association ends, the socket is closed, the DUL thread
stopped and the association's events fired.

If pynetdicom itself has something to send before the hand-off (as it does
when the peer accepted none of the presentation contexts), the DUL thread goes
on as pynetdicom's own.
"""

import logging
import threading
from typing import Any

from pynetdicom import AE, Association, evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AddressInformation, AssociationSocket

from pacscommon.channel import CLOSED, RELEASED, Channel, LinkEnded

logger = logging.getLogger(__name__)

# NOTE: pynetdicom 3.0.4 has no public way for a requestor to take over its
# established association; the subclasses below override its internals
# (AE._create_socket, DULServiceProvider._is_transport_event and send_pdu,
# Association._run_reactor, the state name Sta6). Check them on every pynetdicom
# upgrade (tests/test_query_loop.py does); remove once pynetdicom has such a way.

# PS3.8 9.2: the state of an established association (Data Transfer).
_ESTABLISHED_STATE = "Sta6"
# How long the hand-off waits for the DUL thread at most, per look.
_PARK_POLL_SECONDS = 0.05
# How long the end of the association waits for pynetdicom's threads.
_JOIN_SECONDS = 5.0


class _Parking:
    """What the DUL thread and the caller's thread agree on."""

    def __init__(self) -> None:
        self.parked = threading.Event()
        self.wake = threading.Event()
        self.ended = threading.Event()
        self.taken = False
        self.given_back = False


class ParkingDUL(DULServiceProvider):
    """A requestor's DUL provider that stops reading once the association is up."""

    parking: _Parking

    def _is_transport_event(self) -> bool:
        """Read the socket, unless the association is established: then park."""
        parking = self.parking
        if self._established() and not parking.given_back:
            parking.parked.set()
            parking.wake.wait()
            return False
        return super()._is_transport_event()

    def send_pdu(self, primitive: Any) -> None:
        """Queue a primitive; once established, wake the DUL to send it."""
        parking = self.parking
        if parking.taken:
            # NOTE: the channel owns the connection; pynetdicom may not write.
            logger.debug("dropped %s after the hand-off", type(primitive).__name__)
            return
        super().send_pdu(primitive)
        # Queued before the DUL parks, the primitive is sent instead of parking;
        # queued after, it wakes the DUL, which goes on as pynetdicom's.
        if parking.parked.is_set() or self._established():
            parking.given_back = True
            parking.wake.set()

    def _established(self) -> bool:
        """Return whether the state machine has reached Data Transfer."""
        return bool(self.state_machine.current_state == _ESTABLISHED_STATE)


class DirectAssociation(Association):
    """A requested association whose messages go through a :class:`Channel`."""

    dul: ParkingDUL
    _channel: Channel | None

    def _run_reactor(self) -> None:
        """Wait, without polling, until the association ends."""
        self.dul.parking.ended.wait()

    def channel(self) -> Channel:
        """Return the channel of the established association; take it over once."""
        if self._channel is None:
            self._channel = self._take_over()
        return self._channel

    def release(self) -> None:
        """Release the association; abort it if the peer does not answer in time."""
        if self.is_established:
            self.channel().release(float(self.acse_timeout or 30.0))

    def abort(self, block: bool = True) -> None:
        """Abort the association."""
        self._abort_blocking(block)

    # NOTE: pynetdicom's ACSE sets the instance attribute ``abort`` to one of
    # these two while it negotiates, which hides the class's ``abort``; both
    # are overridden so that every abort of an association handed over goes
    # through the channel (pynetdicom's own would wait for the parked DUL
    # thread forever). Remove once pynetdicom leaves ``abort`` alone.
    def _abort_blocking(self, block: bool = True) -> None:
        """Abort: through the channel once it has the connection."""
        parking = self.dul.parking
        if self._channel is None and (
            not parking.parked.is_set() or parking.given_back
        ):
            super()._abort_blocking(block)
        elif self.is_established:
            self.channel().abort()

    def _abort_nonblocking(self, block: bool = False) -> None:
        """Abort, from pynetdicom's own threads as from ours."""
        self._abort_blocking(block)

    def _take_over(self) -> Channel:
        """Wait until the DUL thread has parked; return the connection's channel."""
        parking = self.dul.parking
        while not parking.parked.wait(_PARK_POLL_SECONDS):
            if not self.dul.is_alive() or parking.given_back:
                self.is_established = False
                raise LinkEnded(CLOSED, "pynetdicom ended the association")
        parking.taken = True
        sock = self.dul.socket
        if sock is None or sock.socket is None:
            self._end(CLOSED)
            raise LinkEnded(CLOSED, "the connection is closed")
        return Channel(
            sock.socket,
            peer_max_pdu=int(self.acceptor.maximum_length or 0),
            own_max_pdu=int(self.requestor.maximum_length or 0),
            on_end=self._end,
        )

    def _end(self, outcome: str) -> None:
        """Stop pynetdicom's threads, close the connection, fire the events."""
        self.is_established = False
        self.is_released = outcome == RELEASED
        self.is_aborted = outcome != RELEASED
        self._stop_dul()
        self._close_socket()
        self.dul.parking.ended.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(_JOIN_SECONDS)
        if outcome == RELEASED:
            evt.trigger(self, evt.EVT_RELEASED, {})
        else:
            evt.trigger(self, evt.EVT_ABORTED, {})

    def _stop_dul(self) -> None:
        """Wake the parked DUL thread to end; wait until it has."""
        self.dul._kill_thread = True
        self.dul.parking.wake.set()
        if self.dul.is_alive() and self.dul is not threading.current_thread():
            self.dul.join(_JOIN_SECONDS)

    def _close_socket(self) -> None:
        """Close the association's socket and say so."""
        sock: AssociationSocket | None = self.dul.socket
        if sock is None or sock.socket is None:
            return
        sock.close()
        address: AddressInformation | None = self.acceptor.address_info
        info = address.as_tuple if address is not None else ("", 0)
        evt.trigger(self, evt.EVT_CONN_CLOSE, {"address": info})


class DirectAE(AE):
    """An application entity whose associations are handed to a channel."""

    def _create_socket(
        self, assoc: Association, address: AddressInformation, tls_args: Any
    ) -> AssociationSocket:
        """Adopt each new association before it connects."""
        adopt(assoc)
        return super()._create_socket(assoc, address, tls_args)


def adopt(assoc: Association) -> None:
    """Make a new, not yet started requestor step aside once established."""
    assoc.__class__ = DirectAssociation
    assoc.dul.__class__ = ParkingDUL
    direct: DirectAssociation = assoc  # type: ignore[assignment]
    direct._channel = None
    direct.dul.parking = _Parking()
    # A thread left parked by a bug must not keep the process alive.
    direct.dul.daemon = True
