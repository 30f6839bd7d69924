"""Buffered reads from an association's socket, for our own message loops.

The listener's receive loop and the C-GET requestor read PDUs with a
:class:`Link`: headers and command sets are taken whole, data sets are poured
into their files in the pieces that arrive, without gathering a PDU first.
"""

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pacscommon import commands as cmd

# Socket reads: large enough for a whole DCMTK PDU (128 KiB) and more.
_BUFFER_BYTES = 512 * 1024
# How often a blocked read looks for a local abort.
POLL_SECONDS = 0.25
# A command set is a few hundred bytes; anything near this is not one.
MAX_COMMAND_BYTES = 64 * 1024


class Ended(Exception):
    """The association ended; ``outcome`` says how."""

    def __init__(self, outcome: str, detail: str = "") -> None:
        super().__init__(detail or outcome)
        self.outcome = outcome


class Link:
    """Buffered reads from an association's socket."""

    def __init__(
        self, sock: socket.socket, stop: threading.Event, idle_limit: float | None
    ) -> None:
        self.sock = sock
        self.buf = bytearray(_BUFFER_BYTES)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0
        self.stop = stop
        self.idle_limit = idle_limit

    def take(self, count: int) -> bytes:
        """Return the next ``count`` bytes."""
        if self.end - self.start < count:
            self._gather(count)
        data = bytes(self.view[self.start : self.start + count])
        self.start += count
        return data

    def pour(self, count: int, sink: Callable[[memoryview], Any]) -> None:
        """Hand the next ``count`` bytes to ``sink`` in the pieces that arrive."""
        while count:
            if self.start == self.end:
                self.start = self.end = 0
                self._receive()
            piece = min(count, self.end - self.start)
            sink(self.view[self.start : self.start + piece])
            self.start += piece
            count -= piece

    def _gather(self, count: int) -> None:
        """Read until ``count`` bytes are buffered."""
        if count > len(self.buf):
            raise cmd.ProtocolError(f"{count} bytes where a header was expected")
        if len(self.buf) - self.start < count:
            self._compact()
        while self.end - self.start < count:
            self._receive()

    def _compact(self) -> None:
        """Move the buffered bytes to the front of the buffer."""
        left = self.end - self.start
        self.buf[:left] = self.buf[self.start : self.end]
        self.start, self.end = 0, left

    def _receive(self) -> None:
        """Read what the peer has sent into the buffer's free end."""
        if self.end == len(self.buf):
            self._compact()
        idle = 0.0
        while True:
            if self.stop.is_set():
                raise Ended("aborted", "aborted locally")
            try:
                count = self.sock.recv_into(self.view[self.end :])
            except TimeoutError:
                idle += POLL_SECONDS
                if self.idle_limit is not None and idle >= self.idle_limit:
                    raise Ended("aborted", "network timeout reached") from None
                continue
            except OSError as exc:
                raise Ended("closed", f"connection lost: {exc}") from exc
            if count == 0:
                raise Ended("closed")
            self.end += count
            return


@dataclass(frozen=True)
class Pdv:
    """The header of a PDV, or of a PDU that is not a P-DATA-TF."""

    pdu_type: int
    size: int  # the PDV's data length; the PDU's length if not a P-DATA-TF
    context_id: int = 0
    control: int = 0


class PdvReader:
    """Read the PDVs of the P-DATA-TF PDUs of a :class:`Link`, one at a time."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.left = 0  # bytes of the current P-DATA-TF PDU not yet read

    def next(self) -> Pdv:
        """Return the next PDV's header; the caller then reads its data.

        A PDU of another type comes back with its type and length, and its
        body is left for the caller.
        """
        while not self.left:
            pdu_type, length = cmd.decode_pdu_header(self.link.take(6))
            if pdu_type != cmd.PDU_P_DATA:
                return Pdv(pdu_type, length)
            self.left = length
        if self.left < 6:
            raise cmd.ProtocolError("P-DATA-TF ends inside a PDV header")
        size, context_id, control = cmd.decode_pdv_header(self.link.take(6))
        self.left -= 6 + size
        if self.left < 0:
            raise cmd.ProtocolError("PDV runs past the end of its PDU")
        return Pdv(cmd.PDU_P_DATA, size, context_id, control)


class CommandParts:
    """The fragments of a command set that is arriving."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, fragment: bytes, last: bool) -> dict[int, bytes] | None:
        """Add a fragment; return the decoded command set once it is whole."""
        self.parts.append(fragment)
        self.size += len(fragment)
        if self.size > MAX_COMMAND_BYTES:
            raise cmd.ProtocolError("command set too long")
        if not last:
            return None
        raw = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return cmd.decode_command(raw)

    @property
    def arriving(self) -> bool:
        """Return whether part of a command set has come."""
        return bool(self.parts)
