"""Hand an accepted storage association from pynetdicom to the receive loop.

pynetdicom's DUL thread sends the A-ASSOCIATE-AC; from then on the
:class:`~pacscommon.receiver.ReceiveLoop` reads the connection in the
association's thread. The hand-off is by subclass: the server's request handler
gives each new association the two subclasses below, the DUL thread parks
right after the A-ASSOCIATE-AC (so that nothing else reads the socket) and is
stopped when the loop ends.
"""

import logging
import threading
from typing import Any

from pynetdicom import Association, evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ASSOCIATE_AC
from pynetdicom.transport import RequestHandler

from pacscommon.receiver import ReceiveLoop, Receiver

logger = logging.getLogger(__name__)

# The server attribute that carries the Receiver.
RECEIVER_ATTR = "pacs_receiver"
# How long a local abort waits for the loop to notice.
_ABORT_WAIT_SECONDS = 5.0


class _Handoff:
    """The moments the DUL thread and the association thread agree on."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.parked = threading.Event()
        self.resume = threading.Event()
        self.stop = threading.Event()
        self.done = threading.Event()


class ParkingDUL(DULServiceProvider):
    """A DUL provider that stops reading once it has accepted the association."""

    handoff: _Handoff

    def _send(self, pdu: Any) -> None:
        """Send a PDU; after the A-ASSOCIATE-AC, wait for the loop to end."""
        super()._send(pdu)
        if isinstance(pdu, A_ASSOCIATE_AC):
            self.handoff.parked.set()
            self.handoff.resume.wait()


class ReceivingAssociation(Association):
    """An acceptor whose established association is served by the loop."""

    dul: ParkingDUL

    def _run_reactor(self) -> None:
        """Serve the established association with the receive loop."""
        handoff = self.dul.handoff
        while not handoff.parked.wait(0.05):
            if not self.dul.is_alive():
                # The DUL ended before the hand-off: pynetdicom cleans up.
                return super()._run_reactor()
        try:
            outcome = ReceiveLoop(self, handoff.receiver, handoff.stop).run()
            self._end(outcome)
        finally:
            self.dul._kill_thread = True
            handoff.resume.set()
            self._kill = True
            handoff.done.set()

    def _end(self, outcome: str) -> None:
        """Close the connection and fire the events of how it ended."""
        self.is_established = False
        if outcome == "released":
            self.is_released = True
            evt.trigger(self, evt.EVT_RELEASED, {})
        elif outcome == "aborted":
            self.is_aborted = True
            evt.trigger(self, evt.EVT_ABORTED, {})
        sock = self.dul.socket
        address = self.requestor.address_info
        if sock is not None:
            sock.close()
        info = address.as_tuple if address is not None else ("", 0)
        evt.trigger(self, evt.EVT_CONN_CLOSE, {"address": info})
        if outcome == "closed":
            # The peer dropped the connection: an A-P-ABORT in PS3.8 terms.
            self.is_aborted = True
            evt.trigger(self, evt.EVT_ABORTED, {})

    def abort(self, block: bool = True) -> None:
        """Abort the association; the loop sends the A-ABORT."""
        handoff = getattr(self.dul, "handoff", None)
        if handoff is None or not handoff.parked.is_set() or handoff.done.is_set():
            super().abort(block)
            return
        handoff.stop.set()
        if block:
            handoff.done.wait(_ABORT_WAIT_SECONDS)


class ReceivingRequestHandler(RequestHandler):
    """The request handler of a storage SCP served by the receive loop."""

    def _create_association(self) -> Association:
        """Create the association, ready for the hand-off."""
        assoc = super()._create_association()
        receiver = getattr(self.server, RECEIVER_ATTR, None)
        if isinstance(receiver, Receiver):
            adopt(assoc, receiver)
        return assoc


def adopt(assoc: Association, receiver: Receiver) -> None:
    """Make a new, not yet started acceptor hand its connection to the loop."""
    assoc.__class__ = ReceivingAssociation
    assoc.dul.__class__ = ParkingDUL
    dul: ParkingDUL = assoc.dul  # type: ignore[assignment]
    dul.handoff = _Handoff(receiver)
