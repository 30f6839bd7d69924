"""Command line of pacsquery: parse, query the PACS, write the results file."""

import gc
import logging
from argparse import ArgumentParser, Namespace
from dataclasses import dataclass, replace
from pathlib import Path

from chris_plugin import chris_plugin

from pacscommon.errors import (
    EXIT_FAILED,
    EXIT_OK,
    InputError,
    OperationError,
    PullError,
    unexpected,
)
from pacscommon.logs import report_error, setup_logging
from pacscommon.options import (
    add_connection_options,
    peer_from,
    run_plugin,
    timeouts_from,
)
from pacscommon.peers import Peer
from pacsquery.batch import BatchQuery, find_batch_file, read_batch
from pacsquery.charsets import defined_terms
from pacsquery.identifiers import (
    UIDS_PER_QUERY,
    UTF8,
    Criterion,
    QueryKeys,
    build_query,
    check_model,
    parse_filter,
    parse_return_keys,
)
from pacsquery.levels import STUDY_ROOT, check_depth
from pacsquery.query import QueryOutcome, run_queries
from pacsquery.report import invocation, write_error, write_success

logger = logging.getLogger(__name__)

ENV_PREFIX = "PACSQUERY"


class _Parser(ArgumentParser):
    """An argument parser that looks its program's version up only when asked."""

    @property
    def version(self) -> str:
        """Return the text ``--version`` prints."""
        # NOTE: read from the installed distribution, not from
        # ``pacsquery.__version__``: run from the repository root, ``python -m
        # pytest`` puts the project folder ``pacsquery/`` first on sys.path,
        # where it imports as an empty namespace. Looked up here, not at import,
        # because importlib.metadata costs a tenth of the start-up time.
        from importlib.metadata import version

        return f"{self.prog} {version('pacsquery')}"


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
        "StudyDate: YYYYMMDD or YYYY-MM-DD, a month YYYYMM, a year YYYY, or a "
        "range A-B, A- or -B of those",
    ),
    FilterOption(
        ("--study-time",),
        "StudyTime",
        "StudyTime: HHMM, HHMMSS or HH:MM[:SS], or a range A-B, A- or -B; a time "
        "means its whole minute or second (-1015 includes 10:15:30)",
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
    parser = _Parser(
        # The default usage would list each option by its first (seed-era) name.
        usage="%(prog)s [options] INPUTDIR OUTPUTDIR (options: %(prog)s --help)",
        prog="pacsquery",
        description="Ask a PACS (C-FIND) for the series that match the filters "
        "and write them to OUTPUTDIR/success.txt, one row per series (per study "
        "with --level study), with a table in OUTPUTDIR/results.txt. With no "
        "filter it lists every series the PACS holds. INPUTDIR may hold a batch "
        "of queries (queries.csv or queries.json). Every option can also be set "
        f"as {ENV_PREFIX}_<OPTION> (for example {ENV_PREFIX}_PACS_HOST); the "
        "command line wins.",
    )
    add_connection_options(parser)
    for option in FILTER_OPTIONS:
        parser.add_argument(
            *option.flags, dest=option.dest, type=str, default="", help=option.help
        )
    add_query_options(parser)
    # argparse's --version prints the parser's own ``version`` when given none.
    parser.add_argument("--version", action="version")
    return parser


def add_query_options(parser: ArgumentParser) -> None:
    """Add the options that shape the query rather than filter it."""
    add = parser.add_argument
    add(
        "--filter",
        dest="filter",
        type=str,
        default="",
        help='other attributes to match, as "Key=value,Key=value" where a key is '
        "a DICOM keyword or a tag (BodyPartExamined=HEAD,(0008,1010)=MR1)",
    )
    add(
        "--return-keys",
        dest="return_keys",
        type=str,
        default="",
        help='more columns for each row, as "Key,Key", keywords or tags '
        "(StudyTime,0018,0015)",
    )
    add(
        "--level",
        dest="level",
        type=str,
        default="series",
        help="what a row stands for: series (a C-FIND for the studies, then one "
        "per study for its series) or study (one C-FIND; each row a study with "
        "NumberOfStudyRelatedSeries and NumberOfStudyRelatedInstances, its series "
        "columns empty; series filters are refused)",
    )
    add(
        "--query-model",
        dest="query_model",
        type=str,
        default=STUDY_ROOT,
        help="information model: study (Study Root) or patient (Patient Root)",
    )
    add(
        "--character-set",
        dest="character_set",
        type=str,
        default=UTF8,
        help="SpecificCharacterSet of filters that are not ASCII (ISO_IR 100 for "
        "Latin-1; terms separated by backslashes for ISO 2022), a defined term of "
        "DICOM PS3.3 C.12.1.1.2: " + ", ".join(defined_terms()),
    )
    add(
        "--uids-per-query",
        dest="uids_per_query",
        type=int,
        default=UIDS_PER_QUERY,
        help="at most this many UIDs in one request; a longer list is split",
    )
    add(
        "--batch-file",
        dest="batch_file",
        type=str,
        default="",
        help="a CSV or JSON file of queries, one per row, in INPUTDIR (default: "
        "INPUTDIR/queries.csv or queries.json if there)",
    )


parser = build_parser()


@chris_plugin(
    parser=parser,
    title="PACS query",
    category="PACS",
    min_memory_limit="200Mi",
)
def main(options: Namespace, inputdir: Path, outputdir: Path) -> int:
    """Ask the PACS for the series that match the options; return the exit code."""
    try:
        setup_logging(options.log_level)
        batch = batch_of(options, inputdir)
        queries = query_keys(options, batch)
        peer = peer_from(options)
        timeouts = timeouts_from(options)
        uids = checked_uids_per_query(options)
        outcome = run_queries(peer, timeouts, queries, uids)
        command = invocation(parser, options, inputdir, outputdir)
        write_success(outputdir, outcome, command, batch=batch is not None)
    except PullError as exc:
        return fail(outputdir, exc)
    except Exception as exc:  # noqa: BLE001 - one error line, traceback at DEBUG
        return fail(outputdir, unexpected(exc))
    if not outcome.complete:
        report_error(cut_short(peer, outcome))
        return EXIT_FAILED
    return EXIT_OK


def batch_of(options: Namespace, inputdir: Path) -> list[BatchQuery] | None:
    """Return the queries of the run's batch file, or ``None`` if it has none."""
    path = find_batch_file(inputdir, options.batch_file)
    if path is None:
        return None
    names = {
        flag.removeprefix("--"): o.keyword for o in FILTER_OPTIONS for flag in o.flags
    }
    queries = read_batch(path, names)
    logger.info("batch file %s: %d queries", path.name, len(queries))
    return queries


def query_keys(
    options: Namespace, batch: list[BatchQuery] | None = None
) -> list[QueryKeys]:
    """Return the keys of each query the options (and a batch) describe.

    A batch row's value for a key replaces the options' value for that key.
    """
    criteria = [
        Criterion(option.keyword, getattr(options, option.dest), option.flags[-1])
        for option in FILTER_OPTIONS
    ]
    criteria += parse_filter(options.filter)
    return_keys = parse_return_keys(options.return_keys)
    model = check_model(options.query_model)
    charset = options.character_set.strip()
    depth = check_depth(options.level)
    if batch is None:
        return [build_query(criteria, return_keys, model, charset, depth)]
    queries = []
    for row in batch:
        common = [c for c in criteria if c.keyword not in row.keywords]
        together = [*common, *row.criteria]
        keys = build_query(together, return_keys, model, charset, depth)
        queries.append(replace(keys, label=row.label))
    return queries


def checked_uids_per_query(options: Namespace) -> int:
    """Return ``--uids-per-query``, or raise if it is not a positive number."""
    if options.uids_per_query < 1:
        raise InputError(
            f"--uids-per-query {options.uids_per_query} is not a positive number"
        )
    return int(options.uids_per_query)


def cut_short(peer: Peer, outcome: QueryOutcome) -> OperationError:
    """Say that the PACS ended its answer early, and what was kept."""
    return OperationError(
        f"{peer} cut its answer short (status 0xFE00, cancel); success.txt holds "
        f"the {len(outcome.rows)} rows received (a row per "
        f'{outcome.depth.lower()}), marked "complete": false; run the query again'
    )


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
    # What the imports made lives as long as the process: keep the garbage
    # collector from walking it again and again while thousands of answers
    # are decoded (a sixth of the CPU time of a query of 2000 studies).
    gc.freeze()
    return run_plugin(parser, ENV_PREFIX, main)
