"""Command line of pacsquery: parse, query the PACS, write the results file."""

import logging
import sys
from argparse import ArgumentParser, Namespace
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from chris_plugin import chris_plugin

from pacscommon.errors import (
    EXIT_FAILED,
    EXIT_OK,
    InputError,
    OperationError,
    PullError,
)
from pacscommon.logs import report_error, setup_logging
from pacscommon.network import Peer, Timeouts
from pacscommon.options import (
    add_connection_options,
    apply_environment,
    peer_from,
    timeouts_from,
)
from pacsquery.identifiers import (
    Criterion,
    QueryKeys,
    build_query,
    parse_filter,
    parse_return_keys,
)
from pacsquery.query import QueryOutcome, run_query
from pacsquery.report import invocation, write_error, write_success

logger = logging.getLogger(__name__)

ENV_PREFIX = "PACSQUERY"
# NOTE: read from the installed distribution, not from ``pacsquery.__version__``:
# run from the repository root, ``python -m pytest`` puts the project folder
# ``pacsquery/`` first on sys.path, where it imports as an empty namespace.
VERSION = version("pacsquery")


@dataclass(frozen=True)
class FilterOption:
    """An option that matches one DICOM attribute; a seed-era alias comes first."""

    flags: tuple[str, ...]
    keyword: str
    help: str

    @property
    def dest(self) -> str:
        """Return the snake_case name of the option."""
        return self.flags[-1].removeprefix("--").replace("-", "_")


_WILDCARDS = "; * and ? are wildcards"
FILTER_OPTIONS = (
    FilterOption(
        ("--patientID", "--patient-id"), "PatientID", "PatientID to match" + _WILDCARDS
    ),
    FilterOption(
        ("--patientName", "--patient-name"),
        "PatientName",
        "PatientName to match, as Family^Given" + _WILDCARDS,
    ),
    FilterOption(
        ("--accession-number",),
        "AccessionNumber",
        "AccessionNumber to match" + _WILDCARDS,
    ),
    FilterOption(
        ("--studyDate", "--study-date"),
        "StudyDate",
        "StudyDate: YYYYMMDD or YYYY-MM-DD, or a range A-B, A- or -B",
    ),
    FilterOption(
        ("--modalitiesInStudy", "--modalities-in-study"),
        "ModalitiesInStudy",
        "studies that hold a series of this modality (CT; CT,MR for either)",
    ),
    FilterOption(
        ("--modality",),
        "Modality",
        "series of this modality only (CT; CT,MR for either)",
    ),
    FilterOption(
        ("--studyDescription", "--study-description"),
        "StudyDescription",
        "StudyDescription to match" + _WILDCARDS,
    ),
    FilterOption(
        ("--seriesDescription", "--series-description"),
        "SeriesDescription",
        "SeriesDescription to match" + _WILDCARDS,
    ),
    FilterOption(
        ("--study-uid",),
        "StudyInstanceUID",
        "StudyInstanceUID to match (several separated by commas)",
    ),
    FilterOption(
        ("--series-uid",),
        "SeriesInstanceUID",
        "SeriesInstanceUID to match (several separated by commas)",
    ),
)


def build_parser() -> ArgumentParser:
    """Return the parser of pacsquery's options."""
    parser = ArgumentParser(
        prog="pacsquery",
        description="Ask a PACS (C-FIND, Study Root) for the series that match "
        "the filters and write them to OUTPUTDIR/success.txt, one row per "
        "series. With no filter it lists every series the PACS holds. Every "
        f"option can also be set as {ENV_PREFIX}_<OPTION> (for example "
        f"{ENV_PREFIX}_PACS_HOST); the command line wins.",
    )
    add_connection_options(parser)
    for option in FILTER_OPTIONS:
        parser.add_argument(
            *option.flags, dest=option.dest, type=str, default="", help=option.help
        )
    parser.add_argument(
        "--filter",
        dest="filter",
        type=str,
        default="",
        help='other attributes to match, as "Keyword=value,Keyword=value" with '
        "DICOM keywords (BodyPartExamined=HEAD)",
    )
    parser.add_argument(
        "--return-keys",
        dest="return_keys",
        type=str,
        default="",
        help='more columns for each row, as "Keyword,Keyword" (StudyTime)',
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser


parser = build_parser()


@chris_plugin(
    parser=parser,
    title="PACS query",
    category="PACS",
    min_memory_limit="200Mi",
)
def main(options: Namespace, inputdir: Path, outputdir: Path) -> int:
    """Ask the PACS for the series that match the options; return the exit code."""
    # TODO(batch queries): read a batch of queries from inputdir; today the
    # query comes from the options alone and inputdir may be empty.
    try:
        setup_logging(options.log_level)
        keys = query_keys(options)
        peer = peer_from(options)
        outcome = run_query(peer, checked_timeouts(options), keys)
        command = invocation(parser, options, inputdir, outputdir)
        write_success(outputdir, outcome, command)
    except PullError as exc:
        return fail(outputdir, exc)
    except Exception as exc:  # noqa: BLE001 - one error line, traceback at DEBUG
        return fail(outputdir, unexpected(exc))
    if not outcome.complete:
        report_error(cut_short(peer, outcome))
        return EXIT_FAILED
    return EXIT_OK


def query_keys(options: Namespace) -> QueryKeys:
    """Return the keys of the query the options describe."""
    criteria = [
        Criterion(option.keyword, getattr(options, option.dest), option.flags[-1])
        for option in FILTER_OPTIONS
    ]
    criteria += parse_filter(options.filter)
    return build_query(criteria, parse_return_keys(options.return_keys))


def checked_timeouts(options: Namespace) -> Timeouts:
    """Return the timeouts the options name, or raise if one is not positive."""
    for flag, value in (
        ("--connect-timeout", options.connect_timeout),
        ("--dimse-timeout", options.dimse_timeout),
    ):
        if not value > 0:
            raise InputError(f"{flag} {value} is not a positive number of seconds")
    return timeouts_from(options)


def cut_short(peer: Peer, outcome: QueryOutcome) -> OperationError:
    """Say that the PACS ended its answer early, and what was kept."""
    return OperationError(
        f"{peer} cut its answer short (status 0xFE00, cancel); success.txt holds "
        f'the {len(outcome.rows)} series received, marked "complete": false; '
        "run the query again"
    )


def unexpected(exc: Exception) -> OperationError:
    """Wrap an error that no step foresaw."""
    error = OperationError(
        f"unexpected {type(exc).__name__}: {exc}; rerun with --log-level DEBUG "
        "for the traceback"
    )
    error.__cause__ = exc
    return error


def fail(outputdir: Path, error: PullError) -> int:
    """Report ``error`` on stderr and in ``error.txt``; return its exit code."""
    report_error(error)
    try:
        write_error(outputdir, str(error))
    except PullError as exc:
        logger.warning("%s", exc)
    return error.exit_code


def cli() -> int:
    """Entry point of the ``pacsquery`` console script."""
    sys.argv[1:] = apply_environment(parser, ENV_PREFIX, sys.argv[1:])
    result: int = main()
    return result
