"""Command line of pacslistener: parse, start the storage SCP, wait for a signal."""

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from pacscommon.errors import EXIT_OK, PullError
from pacscommon.logs import report_error, setup_logging
from pacscommon.network import check_ae_title, check_port
from pacscommon.options import apply_environment
from pacscommon.server import DEFAULT_MAX_PDU, ServerConfig, start_server
from pacscommon.storage import StorageEngine
from pacslistener import __version__

logger = logging.getLogger(__name__)

ENV_PREFIX = "PACSLISTENER"


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of pacslistener's options."""
    parser = argparse.ArgumentParser(
        prog="pacslistener",
        description="DICOM storage SCP that writes every instance it receives "
        "into a series tree under --data-dir, with a per-series index. Every "
        f"option can also be set as {ENV_PREFIX}_<OPTION> (for example "
        f"{ENV_PREFIX}_DATA_DIR).",
    )
    add = parser.add_argument
    add("--aet", dest="aet", default="CHRISLOCAL", help="our AE title")
    add("--port", dest="port", type=int, default=11113, help="port to listen on")
    add("--bind", dest="bind", default="127.0.0.1",
        help="address to listen on (0.0.0.0 for every interface)")  # fmt: skip
    add("--data-dir", dest="data_dir", default="/data",
        help="the data volume: series tree, .index and .incoming")  # fmt: skip
    add("--max-pdu", dest="max_pdu", type=int, default=DEFAULT_MAX_PDU,
        help="largest PDU we accept, in bytes; 0 means unlimited")  # fmt: skip
    add("--max-associations", dest="max_associations", type=int, default=64,
        help="associations served at once")  # fmt: skip
    add("--require-called-aet", dest="require_called_aet", action="store_true",
        help="reject associations not addressed to --aet")  # fmt: skip
    add("--allowed-calling-aets", dest="allowed_calling_aets", default="",
        help="comma-separated calling AE titles to accept; empty accepts all")  # fmt: skip
    add("--fsync", dest="fsync", action="store_true",
        help="flush each file to the disk before it appears")  # fmt: skip
    add("--log-level", dest="log_level", default="INFO",
        help="DEBUG, INFO, WARNING or ERROR")  # fmt: skip
    add("--version", action="version", version=f"pacslistener {__version__}")
    return parser


def config_from(options: argparse.Namespace) -> ServerConfig:
    """Return the server configuration the options name, checked."""
    return ServerConfig(
        aet=check_ae_title(options.aet, "--aet"),
        port=check_port(options.port, "--port"),
        bind=options.bind,
        max_pdu=max(0, options.max_pdu),
        max_associations=max(1, options.max_associations),
        require_called_aet=options.require_called_aet,
        allowed_calling_aets=tuple(
            check_ae_title(a, "--allowed-calling-aets")
            for a in options.allowed_calling_aets.split(",")
            if a.strip()
        ),
    )


def run(options: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; return the exit code."""
    try:
        setup_logging(options.log_level)
        config = config_from(options)
        engine = StorageEngine(Path(options.data_dir), fsync=options.fsync)
        server = start_server(engine, config)
    except PullError as exc:
        report_error(exc)
        return exc.exit_code
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    logger.info("stopping: no new associations")
    server.shutdown()
    return EXIT_OK


def cli() -> int:
    """Entry point of the ``pacslistener`` console script."""
    parser = build_parser()
    argv = apply_environment(parser, ENV_PREFIX, sys.argv[1:])
    return run(parser.parse_args(argv))
