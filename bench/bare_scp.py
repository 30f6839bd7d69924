"""A bare pynetdicom storage SCP: write the received bytes and nothing else.

The benchmark's yardstick for what pynetdicom itself costs. Every data set
streams to a temporary Part-10 file (``STORE_RECV_CHUNKED_DATASET``) inside the
output folder and is renamed to ``<SOPInstanceUID>.dcm``; the PDU size is
unlimited (0); TCP_NODELAY is left as pynetdicom leaves it (off).

    python bench/bare_scp.py --port P --output-dir DIR
"""

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

STORE_SUCCESS = 0x0000


def serve(port: int, output: Path) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    incoming = output / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(incoming)
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    _config.STORE_RECV_CHUNKED_DATASET = True

    def on_store(event: evt.Event) -> int:
        name = f"{event.request.AffectedSOPInstanceUID}.dcm"
        os.replace(event.dataset_path, output / name)
        return STORE_SUCCESS

    ae = AE(ae_title="BARESCP")
    ae.add_supported_context(Verification)
    ae.maximum_pdu_size = 0
    handlers = [(evt.EVT_C_STORE, on_store)]
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


def main() -> int:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    options = parser.parse_args()
    serve(options.port, options.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
