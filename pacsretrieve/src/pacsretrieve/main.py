"""Command line of pacsretrieve: parse, then pull the chosen series."""

import logging
import shlex
import sys
from argparse import ArgumentParser, Namespace
from pathlib import Path

from chris_plugin import chris_plugin

from pacscommon.errors import EXIT_FAILED, InputError, PullError
from pacscommon.logs import report_error, setup_logging
from pacscommon.network import check_ae_title
from pacscommon.options import (
    add_connection_options,
    apply_environment,
    peer_from,
    timeouts_from,
)
from pacsretrieve.pull import PullPlan, collect_all, move_all
from pacsretrieve.report import RetrieveReport
from pacsretrieve.selection import load_requests, results_path, select

logger = logging.getLogger(__name__)

ENV_PREFIX = "PACSRETRIEVE"

parser = ArgumentParser(
    description="Pull the series that pacsquery found out of a PACS: C-MOVE each "
    "chosen row to a storage SCP (pacslistener), wait until every instance is "
    "in its data directory, and copy the series into the output directory "
    "with a report.json. Options can also be set as "
    f"{ENV_PREFIX}_<OPTION> environment variables."
)
add_connection_options(parser)
parser.add_argument(
    "--aetListener",
    "--move-destination",
    dest="move_destination",
    type=str,
    default="CHRISLOCAL",
    help="AE title the PACS sends the series to (the listener's)",
)
parser.add_argument(
    "--dataLocation",
    "--data-location",
    dest="data_location",
    type=str,
    default="/data",
    help="the listener's data directory, as this program sees it",
)
parser.add_argument(
    "--seriesUIDS",
    "--series",
    dest="series",
    type=str,
    default="",
    help="rows to pull: numbers, ranges A-B, SeriesInstanceUIDs, "
    "comma-separated; empty for every row",
)
parser.add_argument(
    "--seriesFile",
    "--series-file",
    dest="series_file",
    type=str,
    default="",
    help="results file to read, relative to the input directory; default success.txt",
)
parser.add_argument(
    "--wait-timeout",
    dest="wait_timeout",
    type=float,
    default=60.0,
    help="seconds to wait with no new instance on disk after the PACS's answer",
)


def plan_from(options: Namespace, outputdir: Path) -> PullPlan:
    """Return the pull the options describe, checked."""
    data_dir = Path(options.data_location)
    if not data_dir.is_dir():
        raise InputError(
            f"--data-location {data_dir} is not a directory; give the listener's "
            "data directory"
        )
    return PullPlan(
        peer=peer_from(options),
        timeouts=timeouts_from(options),
        destination=check_ae_title(options.move_destination, "--move-destination"),
        data_dir=data_dir,
        outputdir=outputdir,
        wait_timeout=options.wait_timeout,
    )


@chris_plugin(
    parser=parser,
    title="PACS retrieve",
    category="PACS",
    min_memory_limit="200Mi",
)
def main(options: Namespace, inputdir: Path, outputdir: Path) -> int:
    """Pull the chosen series; return the exit code."""
    try:
        setup_logging(options.log_level)
        plan = plan_from(options, outputdir)
        requests = load_requests(results_path(inputdir, options.series_file))
        chosen = select(requests, options.series)
        report = RetrieveReport(command=shlex.join(sys.argv))
        logger.info("pulling %d series from %s", len(chosen), plan.peer)
        move_all(plan, chosen, report)
    except PullError as exc:
        report_error(exc)
        return exc.exit_code
    collect_all(plan, report)
    report.write(outputdir)
    logger.info("%s", report.summary())
    if report.failed:
        report_error(PullError(f"{report.summary()}: {report.first_error()}"))
        return EXIT_FAILED
    return report.exit_code()


def cli() -> int:
    """Entry point of the ``pacsretrieve`` console script."""
    sys.argv[1:] = apply_environment(parser, ENV_PREFIX, sys.argv[1:])
    return int(main() or 0)
