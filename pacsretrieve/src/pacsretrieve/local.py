"""The storage engine run inside pacsretrieve, for ``--mode self`` and ``get``.

The engine writes into a staging data directory inside OUTPUTDIR (same
filesystem, so the series are hard-linked out of it), with its ``.incoming`` and
``.index``; the staging directory is removed when the pull ends, so OUTPUTDIR
keeps only the series tree and the report.
"""

import logging
import shutil
from pathlib import Path
from types import TracebackType

from pynetdicom.transport import ThreadedAssociationServer

from pacscommon.handlers import StorageHandlers
from pacscommon.server import ServerConfig, start_server, stop_server
from pacscommon.storage import StorageEngine

logger = logging.getLogger(__name__)

LOCAL_DATA_DIR = ".pacsretrieve-data"
STOP_GRACE = 5.0


class LocalStore:
    """A storage engine in a staging directory, optionally served as an SCP."""

    def __init__(self, outputdir: Path, server: ServerConfig | None) -> None:
        self.data_dir = outputdir / LOCAL_DATA_DIR
        self.engine = StorageEngine(self.data_dir)
        self.handlers = StorageHandlers(self.engine)
        self.config = server
        self._server: ThreadedAssociationServer | None = None

    def __enter__(self) -> "LocalStore":
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        if self.config is None:
            # C-GET: the retriever's session stores what comes back.
            self.engine.prepare()
        else:
            self._server = start_server(self.engine, self.config)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            stop_server(self._server, STOP_GRACE)
        shutil.rmtree(self.data_dir, ignore_errors=True)
