"""C-STORE data sets streamed from the socket into the storage engine.

Both of our own message loops receive C-STOREs: the listener's receive loop
(:mod:`pacscommon.receiver`) and the C-GET requestor
(:mod:`pacscommon.retrievals`). For each, an :class:`Arrivals` opens the data
set's file in the engine's ``.incoming`` folder, writes the file meta, takes
the data set's fragments as they are read, and, once the data set is whole,
has the engine store it and gives the status to answer. A data set that will
never be whole is removed.
"""

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import Association

from pacscommon import commands as cmd
from pacscommon.filemeta import FileMetaFields, file_meta_bytes
from pacscommon.files import FileKey, file_key
from pacscommon.handlers import StorageHandlers
from pacscommon.headscan import DataSetHead
from pacscommon.incoming import IncomingFile, IncomingFolder
from pacscommon.storage import STORE_OUT_OF_RESOURCES, STORE_SUCCESS

logger = logging.getLogger(__name__)

# How much of each data set is kept in memory for the layout's attributes.
HEAD_BYTES = 16 * 1024
# PS3.10 7.1: a Part-10 file opens with 128 bytes of preamble and "DICM".
_PREAMBLE = b"\x00" * 128 + b"DICM"


#: A file's identity: device, inode, size, modification time (ns). A rename
#: into the tree keeps it, so it names the stored file too.
#: Told of each file stored: its identity, SHA-256 and data set head.
StoredNote = Callable[[FileKey, str, DataSetHead], None]


@dataclass
class Receiver:
    """Where received instances go: the storage handlers and incoming folder.

    ``noted``, if given, hears of every instance stored, with the SHA-256 of
    its file computed as it was written (pacsretrieve's C-GET, which reports
    them, so that no file is read again).
    """

    handlers: StorageHandlers
    incoming: IncomingFolder
    noted: StoredNote | None = None


@dataclass(frozen=True)
class Implementation:
    """Our own implementation class UID and version name, for the file meta."""

    class_uid: str
    version_name: str


class Arrival:
    """A C-STORE whose data set is arriving."""

    def __init__(
        self,
        context_id: int,
        command: dict[int, bytes],
        incoming: IncomingFolder,
        spare: IncomingFile | None,
        hashing: bool = False,
    ) -> None:
        self.context_id = context_id
        self.digest = hashlib.sha256() if hashing else None
        self.message_id = cmd.command_us(command, cmd.MessageID)
        self.sop_class = cmd.command_uid(command, cmd.AffectedSOPClassUID)
        self.sop_instance = cmd.command_uid(command, cmd.AffectedSOPInstanceUID)
        self.head = bytearray()
        self.size = 0  # of the data set
        self.meta_size = 0  # of the preamble and file meta before it
        self.transfer_syntax = ""
        self.error: OSError | None = None
        self.file: IncomingFile | None = spare
        if spare is not None:
            # Opened before the command came: the reserve is checked now.
            spare.check_reserve()
            return
        try:
            self.file = incoming.open()
        except OSError as exc:
            self.error = exc

    def write(self, piece: memoryview) -> None:
        """Write a piece of the data set, keeping its first bytes."""
        if len(self.head) < HEAD_BYTES:
            self.head += piece[: HEAD_BYTES - len(self.head)]
        self.size += len(piece)
        if self.file is not None:
            self.file.write(piece)
        if self.digest is not None:
            self.digest.update(piece)

    def close(self) -> OSError | None:
        """Close the file; return why it could not be written, if so."""
        if self.file is not None:
            self.file.close()
            return self.file.error
        return self.error

    def discard(self) -> None:
        """Close and remove the file."""
        if self.file is not None:
            self.file.close()
            Path(self.file.name).unlink(missing_ok=True)


def _key_if_there(name: str) -> FileKey | None:
    """Return a closed incoming file's identity, or None if it is gone."""
    try:
        return file_key(name)
    except OSError:
        return None


class Arrivals:
    """The C-STORE data sets of one association, one at a time."""

    def __init__(
        self, assoc: Association, receiver: Receiver, own: Implementation
    ) -> None:
        self.assoc = assoc
        self.receiver = receiver
        self.own = own
        self.current: Arrival | None = None
        # A file opened ahead for the next data set, while the sender prepares it.
        self.spare: IncomingFile | None = None

    def start(
        self, context_id: int, command: dict[int, bytes], transfer_syntax: str
    ) -> Arrival:
        """Open the file of a C-STORE's data set and write its file meta."""
        spare, self.spare = self.spare, None
        hashing = self.receiver.noted is not None
        arrival = Arrival(context_id, command, self.receiver.incoming, spare, hashing)
        arrival.transfer_syntax = transfer_syntax
        self.current = arrival
        if arrival.file is not None:
            meta = FileMetaFields(
                arrival.sop_class,
                arrival.sop_instance,
                transfer_syntax,
                self.own.class_uid,
                self.own.version_name,
            )
            first = _PREAMBLE + file_meta_bytes(meta)
            arrival.file.write(first)
            arrival.meta_size = len(first)
            if arrival.digest is not None:
                arrival.digest.update(first)
        return arrival

    def finish(self) -> tuple[Arrival, int]:
        """Store the data set that arrived whole; return it and its status."""
        arrival = self.current
        if arrival is None:
            raise cmd.ProtocolError("a data set without its C-STORE command")
        self.current = None
        error = arrival.close()
        if arrival.file is None:
            status = STORE_OUT_OF_RESOURCES
            logger.warning("instance %s not stored: %s", arrival.sop_instance, error)
        else:
            name = arrival.file.name
            head = DataSetHead(
                bytes(arrival.head),
                arrival.transfer_syntax,
                whole=arrival.size == len(arrival.head),
            )
            noting = self.receiver.noted is not None and error is None
            key = _key_if_there(name) if noting else None
            status = self.receiver.handlers.store_received(
                self.assoc,
                arrival.sop_instance,
                lambda: Path(name),
                error,
                head,
                arrival.meta_size + arrival.size,
            )
            if status == STORE_SUCCESS:
                self._note(arrival, key, head)
        if status != STORE_SUCCESS:
            arrival.discard()
        return arrival, status

    def _note(self, arrival: Arrival, key: FileKey | None, head: DataSetHead) -> None:
        """Tell the receiver's listener of a stored file, if it has one."""
        noted = self.receiver.noted
        if noted is not None and key is not None and arrival.digest is not None:
            noted(key, arrival.digest.hexdigest(), head)

    def open_spare(self) -> None:
        """Open the file for the next data set, if the disk lets us."""
        # Creating a file costs about as much as receiving a small data set
        # (bench/RESULTS.md): do it while the sender reads its answer.
        if self.spare is not None:
            return
        try:
            self.spare = self.receiver.incoming.open(check_reserve=False)
        except OSError:
            self.spare = None

    def drop(self) -> None:
        """Remove the file of a data set that will never be whole, and the spare."""
        spare, self.spare = self.spare, None
        if spare is not None:
            spare.close()
            Path(spare.name).unlink(missing_ok=True)
        arrival, self.current = self.current, None
        if arrival is not None:
            arrival.discard()
            logger.warning("association ended mid-instance; partial data discarded")
