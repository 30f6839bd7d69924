"""Command line of pacsretrieve: parse, then pull the chosen series."""

import logging
import shlex
import signal
import sys
import threading
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from chris_plugin import chris_plugin

from pacscommon.errors import (
    EXIT_FAILED,
    InputError,
    Interrupted,
    PullError,
    unexpected,
)
from pacscommon.logs import report_error, setup_logging
from pacscommon.options import (
    peer_from,
    run_plugin,
    timeouts_from,
)
from pacscommon.peers import check_ae_title, check_port
from pacsretrieve.arguments import ENV_PREFIX, build_parser
from pacsretrieve.preview import preview_available
from pacsretrieve.pull import PullPlan, run_pull
from pacsretrieve.report import RetrieveReport
from pacsretrieve.retriever import MODE_MOVE, MODES
from pacsretrieve.selection import SeriesRequest, load_requests, results_path, select

logger = logging.getLogger(__name__)

parser = build_parser()


def plan_from(options: Namespace, outputdir: Path) -> PullPlan:
    """Return the pull the options describe, checked."""
    mode = options.mode.strip().lower()
    if mode not in MODES:
        raise InputError(f"--mode {options.mode!r} is not one of {', '.join(MODES)}")
    data_dir = Path(options.data_location)
    # A dry run reads nothing there: it may plan a pull before the listener runs.
    if mode == MODE_MOVE and not options.dry_run and not data_dir.is_dir():
        raise InputError(
            f"--data-location {data_dir} is not a directory; give the listener's "
            "data directory, or use --mode get or self"
        )
    _check_counts(options)
    if options.preview and not preview_available():
        raise InputError(
            "--preview needs numpy to decode pixels; install pacsretrieve[preview]"
        )
    return PullPlan(
        peer=peer_from(options),
        timeouts=timeouts_from(options),
        destination=check_ae_title(options.move_destination, "--move-destination"),
        data_dir=data_dir,
        outputdir=outputdir,
        wait_timeout=options.wait_timeout,
        mode=mode,
        deadline=options.deadline,
        retries=options.retries,
        retry_delay=options.retry_delay,
        parallel=options.parallel,
        listen_port=check_port(options.listen_port, "--listen-port"),
        listen_bind=options.listen_bind,
        dry_run=options.dry_run,
        preview=options.preview,
    )


def _check_counts(options: Namespace) -> None:
    """Raise unless the numeric options are in range."""
    for flag, value, least in (
        ("--wait-timeout", options.wait_timeout, 0),
        ("--deadline", options.deadline, 0),
        ("--retries", options.retries, 0),
        ("--retry-delay", options.retry_delay, 0),
        ("--parallel", options.parallel, 1),
        ("--max-series", options.max_series, 0),
    ):
        if value < least:
            raise InputError(f"{flag} {value} is below {least}")


def check_cap(chosen: list[SeriesRequest], options: Namespace) -> None:
    """Refuse an unbounded pull of more series than ``--max-series``."""
    cap = options.max_series
    if options.series.strip() or not cap or len(chosen) <= cap:
        return
    raise InputError(
        f"the results file lists {len(chosen)} series, more than --max-series "
        f"{cap} allows without --series; choose rows with --series, or raise "
        "--max-series (0 for no limit)"
    )


@chris_plugin(
    parser=parser,
    title="PACS retrieve",
    category="PACS",
    min_memory_limit="200Mi",
)
def main(options: Namespace, inputdir: Path, outputdir: Path) -> int:
    """Pull the chosen series; return the exit code."""
    with stopped_by_signals():
        return pull(options, inputdir, outputdir)


def pull(options: Namespace, inputdir: Path, outputdir: Path) -> int:
    """Pull the chosen series, or say why not; return the exit code."""
    try:
        setup_logging(options.log_level)
        plan = plan_from(options, outputdir)
        requests = load_requests(results_path(inputdir, options.series_file))
        chosen = select(requests, options.series)
        check_cap(chosen, options)
        report = RetrieveReport(shlex.join(sys.argv), plan.mode, plan.dry_run)
        logger.info("pulling %d series from %s (%s)", len(chosen), plan.peer, plan.mode)
        run_pull(plan, chosen, report)
    except PullError as exc:
        report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        stopped = interrupted("SIGINT")
        report_error(stopped)
        return stopped.exit_code
    except Exception as exc:  # noqa: BLE001 - one error line, traceback at DEBUG
        error = unexpected(exc)
        report_error(error)
        return error.exit_code
    report.write(outputdir)
    logger.info("%s", report.summary())
    if report.exit_code():
        report_error(PullError(f"{report.summary()}: {report.first_error()}"))
        return EXIT_FAILED
    return report.exit_code()


def interrupted(signal_name: str) -> Interrupted:
    """Return the error of a pull stopped by a signal."""
    return Interrupted(
        f"stopped by {signal_name} before the pull was done; the output "
        "directory holds only the series copied whole so far, and no report; "
        "run again to pull the rest"
    )


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Turn SIGTERM (what ChRIS and docker stop send) into an exception.

    Raised in the main thread, it unwinds the pull like any failure: the
    retrieves under way are aborted, the staging folders removed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise interrupted(signal.Signals(signum).name)

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def cli() -> int:
    """Entry point of the ``pacsretrieve`` console script."""
    return run_plugin(parser, ENV_PREFIX, main)
