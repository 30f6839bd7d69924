"""Command line of pacslistener: parse, start the storage SCP, wait for a signal."""

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from pacscommon.errors import EXIT_OK, InputError, PullError
from pacscommon.housekeeping import prune, usage
from pacscommon.logs import report_error, setup_logging
from pacscommon.options import add_tls_options, apply_environment, tls_from
from pacscommon.peers import check_ae_title, check_port
from pacscommon.server import DEFAULT_MAX_PDU, ServerConfig, start_server, stop_server
from pacscommon.storage import StorageEngine
from pacslistener import __version__

logger = logging.getLogger(__name__)

ENV_PREFIX = "PACSLISTENER"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of pacslistener's options."""
    parser = argparse.ArgumentParser(
        # The default usage would list each option by its first (seed-era) name.
        usage="%(prog)s [options] (options: %(prog)s --help)",
        prog="pacslistener",
        description="DICOM storage SCP that writes every instance it receives "
        "into a series tree under --data-dir, with a per-series index. Every "
        f"option can also be set as {ENV_PREFIX}_<OPTION> (for example "
        f"{ENV_PREFIX}_DATA_DIR).",
    )
    add = parser.add_argument
    add("--aet", dest="aet", default="CHRISLOCAL", help="our AE title")
    add("--port", dest="port", type=int, default=11113, help="port to listen on")
    add(
        "--bind",
        dest="bind",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 for every interface)",
    )
    add(
        "--data-dir",
        dest="data_dir",
        default="/data",
        help="the data volume: series tree, .index and .incoming",
    )
    add(
        "--max-pdu",
        dest="max_pdu",
        type=int,
        default=DEFAULT_MAX_PDU,
        help="largest PDU we accept, in bytes; 0 means unlimited",
    )
    add(
        "--max-associations",
        dest="max_associations",
        type=int,
        default=64,
        help="associations served at once",
    )
    add(
        "--require-called-aet",
        dest="require_called_aet",
        action="store_true",
        help="reject associations not addressed to --aet",
    )
    add(
        "--allowed-calling-aets",
        dest="allowed_calling_aets",
        default="",
        help="comma-separated calling AE titles to accept; empty accepts all",
    )
    add(
        "--prefix-calling-aet",
        dest="prefix_calling_aet",
        action="store_true",
        help="put each sender's series under a folder named by its calling AE",
    )
    add(
        "--min-free-mb",
        dest="min_free_mb",
        type=int,
        default=100,
        help="answer C-STOREs with 0xA700 when less than this is free",
    )
    add(
        "--grace",
        dest="grace",
        type=float,
        default=30.0,
        help="seconds that associations in flight get to finish on SIGTERM",
    )
    add(
        "--fsync",
        dest="fsync",
        action="store_true",
        help="flush each file to the disk before it appears",
    )
    add_tls_options(parser, client=False)
    add(
        "--usage",
        dest="usage",
        action="store_true",
        help="print the series, instances and bytes in --data-dir as JSON, and exit",
    )
    add(
        "--prune-days",
        dest="prune_days",
        type=float,
        default=None,
        help="remove series unchanged for this many days (0: every series), with "
        "their index entries, and exit",
    )
    add(
        "--log-level",
        dest="log_level",
        default="INFO",
        help="DEBUG, INFO, WARNING or ERROR",
    )
    add("--version", action="version", version=f"pacslistener {__version__}")
    return parser


def at_least(value: int, low: int, flag: str) -> int:
    """Return ``value`` if it is ``low`` or more, else raise an input error."""
    if value < low:
        raise InputError(f"{flag} {value} is below {low}")
    return value


def check_limits(options: argparse.Namespace) -> None:
    """Raise if a limit that is no AE title, port or file is out of range."""
    at_least(options.min_free_mb, 0, "--min-free-mb")
    if not options.grace >= 0:
        raise InputError(f"--grace {options.grace} is not a number of seconds")


def config_from(options: argparse.Namespace) -> ServerConfig:
    """Return the server configuration the options name, checked."""
    return ServerConfig(
        aet=check_ae_title(options.aet, "--aet"),
        port=check_port(options.port, "--port"),
        bind=options.bind,
        max_pdu=at_least(options.max_pdu, 0, "--max-pdu"),
        max_associations=at_least(options.max_associations, 1, "--max-associations"),
        require_called_aet=options.require_called_aet,
        allowed_calling_aets=tuple(
            check_ae_title(a, "--allowed-calling-aets")
            for a in options.allowed_calling_aets.split(",")
            if a.strip()
        ),
        tls=tls_from(options, client=False),
    )


def housekeeping_dir(options: argparse.Namespace) -> Path:
    """Return the data directory to report on or prune, or raise if it is none."""
    data_dir = Path(options.data_dir)
    if not data_dir.is_dir():
        raise InputError(
            f"--data-dir {data_dir} is not a directory; give the listener's data "
            "directory"
        )
    return data_dir


def housekeeping(options: argparse.Namespace) -> int:
    """Report disk use or prune old series, as the options ask; return 0."""
    data_dir = housekeeping_dir(options)
    if options.prune_days is not None:
        if not options.prune_days >= 0:
            raise InputError(
                f"--prune-days {options.prune_days} is not a number of days; give "
                "0 or more (0 removes every series)"
            )
        removed = prune(data_dir, options.prune_days)
        logger.info(
            "removed %d series older than %g days", len(removed), options.prune_days
        )
    if options.usage:
        sys.stdout.write(usage(data_dir).as_json() + "\n")
    return EXIT_OK


def watch_stop_signals() -> int:
    """Return a file that becomes readable when SIGTERM or SIGINT arrives."""
    # Any thread may take the signal (native threads of libraries included);
    # the interpreter writes its number to the wakeup file from there, and the
    # handler itself does nothing, so no lock is taken inside it.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: None)
    return read_end


def run(options: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; return the exit code."""
    try:
        setup_logging(options.log_level)
        if options.usage or options.prune_days is not None:
            return housekeeping(options)
        check_limits(options)
        config = config_from(options)
        engine = StorageEngine(
            Path(options.data_dir),
            prefix_by_aet=options.prefix_calling_aet,
            fsync=options.fsync,
            reserve_bytes=options.min_free_mb * 1024 * 1024,
        )
        stop_signal = watch_stop_signals()
        server = start_server(engine, config)
    except PullError as exc:
        report_error(exc)
        return exc.exit_code
    os.read(stop_signal, 1)
    logger.info(
        "stopping: no new associations, %.0f s for those in flight", options.grace
    )
    stop_server(server, options.grace)
    return EXIT_OK


def cli() -> int:
    """Entry point of the ``pacslistener`` console script."""
    parser = build_parser()
    argv = apply_environment(parser, ENV_PREFIX, sys.argv[1:])
    return run(parser.parse_args(argv))
