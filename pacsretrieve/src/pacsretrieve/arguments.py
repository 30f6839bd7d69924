"""The command line of pacsretrieve: its options, with their built-in defaults."""

from argparse import ArgumentParser
from importlib.metadata import version

from pacscommon.options import add_connection_options
from pacsretrieve.retriever import MODE_MOVE, MODES

ENV_PREFIX = "PACSRETRIEVE"
DEFAULT_MAX_SERIES = 200


def build_parser() -> ArgumentParser:
    """Return the parser of pacsretrieve's options."""
    parser = ArgumentParser(
        # The default usage would list each option by its first (seed-era) name.
        usage="%(prog)s [options] INPUTDIR OUTPUTDIR (options: %(prog)s --help)",
        description="Pull the series that pacsquery found out of a PACS: C-MOVE "
        "each chosen row to a storage SCP (pacslistener) or to this program, or "
        "C-GET it, wait until every instance is on disk, and put the series into "
        "the output directory with a report.json. Options can also be set as "
        f"{ENV_PREFIX}_<OPTION> environment variables.",
    )
    add_connection_options(parser)
    _add_source_options(parser)
    _add_wait_options(parser)
    _add_mode_options(parser)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('pacsretrieve')}"
    )
    return parser


def _add_source_options(parser: ArgumentParser) -> None:
    """Add where the series come from and which to pull."""
    add = parser.add_argument
    add("--aetListener", "--move-destination", dest="move_destination", type=str,
        default="CHRISLOCAL",
        help="AE title the PACS sends the series to (the listener's, or ours in "
        "--mode self)")  # fmt: skip
    add("--dataLocation", "--data-location", dest="data_location", type=str,
        default="/data",
        help="the listener's data directory, as this program sees it "
        "(--mode move)")  # fmt: skip
    add("--seriesUIDS", "--series", dest="series", type=str, default="",
        help="rows to pull: numbers, ranges A-B, SeriesInstanceUIDs, "
        "comma-separated; empty for every row")  # fmt: skip
    add("--seriesFile", "--series-file", dest="series_file", type=str, default="",
        help="results file to read, relative to the input directory; default "
        "success.txt")  # fmt: skip
    add("--max-series", dest="max_series", type=int, default=DEFAULT_MAX_SERIES,
        help="with no --series, refuse to pull more series than this (0: no "
        "limit)")  # fmt: skip
    add("--dry-run", dest="dry_run", action="store_true",
        help="list the series that would be pulled, and pull nothing")  # fmt: skip


def _add_wait_options(parser: ArgumentParser) -> None:
    """Add how long to wait and how often to try."""
    add = parser.add_argument
    add("--wait-timeout", dest="wait_timeout", type=float, default=60.0,
        help="seconds to wait with no new instance on disk after the PACS's "
        "answer")  # fmt: skip
    add("--deadline", dest="deadline", type=float, default=0.0,
        help="seconds the whole pull may take; 0 for no limit")  # fmt: skip
    add("--retries", dest="retries", type=int, default=2,
        help="times to retry a refused connection, a transient rejection or an "
        "abort")  # fmt: skip
    add("--retry-delay", dest="retry_delay", type=float, default=1.0,
        help="seconds before the first retry; each later one waits twice as "
        "long")  # fmt: skip
    add("--parallel", dest="parallel", type=int, default=1,
        help="series retrieved at once, each over its own association")  # fmt: skip


def _add_mode_options(parser: ArgumentParser) -> None:
    """Add how the instances get here."""
    add = parser.add_argument
    add("--mode", dest="mode", type=str, default=MODE_MOVE,
        help=f"{', '.join(MODES)}: C-MOVE to the listener, C-GET, or C-MOVE to "
        "our own storage SCP")  # fmt: skip
    add("--listen-port", dest="listen_port", type=int, default=11113,
        help="port of our storage SCP in --mode self")  # fmt: skip
    add("--listen-bind", dest="listen_bind", type=str, default="127.0.0.1",
        help="address our storage SCP listens on in --mode self")  # fmt: skip
    add("--preview", dest="preview", action="store_true",
        help="write a PNG thumbnail of each series next to its folder")  # fmt: skip
