"""Write the outcome of a query: ``success.txt`` and ``results.txt``, or ``error.txt``.

Each file is written under a temporary name in the output directory and renamed
into place, so a reader sees a whole file or none. Writing the results removes
an ``error.txt`` left by an earlier run, and writing ``error.txt`` removes the
results, so the output directory never holds both.
"""

import argparse
import json
import logging
import os
import shlex
from pathlib import Path
from typing import Any

from pacscommon.errors import InputError
from pacscommon.files import create_temp
from pacscommon.results import ERROR_FILE, SUCCESS_FILE, row_lines
from pacsquery.query import QueryOutcome, Record
from pacsquery.table import RESULTS_TABLE, results_table

logger = logging.getLogger(__name__)

PROGRAM = "pacsquery"
#: The key that tags each row of a batch with the queries that found it.
QUERY_KEY = "query"
# Options chris_plugin adds for ChRIS's own use, which say nothing of the query.
_UNSHOWN = frozenset({"help", "saveinputmeta", "saveoutputmeta", "version"})


def success_text(outcome: QueryOutcome, command: str, batch: bool = False) -> str:
    """Return ``success.txt``; a batch's rows name the queries that found them."""
    extras = [query_cell(outcome, row) for row in outcome.rows] if batch else None
    head = {
        "status": "success",
        "complete": outcome.complete,
        "command": command,
        "level": outcome.depth.lower(),
        "study_count": outcome.studies,
        "series_count": outcome.series_count,
        "instance_count": outcome.instance_count,
    }
    return document_text(head, row_lines(outcome.rows, extras))


def query_cell(outcome: QueryOutcome, row: Record) -> dict[str, Any]:
    """Return the cell that names the queries of a batch that found a row."""
    labels = outcome.found_by.get(outcome.row_uid(row), [])
    return {QUERY_KEY: {"label": QUERY_KEY, "tag": 0, "value": "; ".join(labels)}}


def write_success(
    outputdir: Path, outcome: QueryOutcome, command: str, batch: bool = False
) -> Path:
    """Write ``success.txt`` and ``results.txt``; remove an old ``error.txt``."""
    text = success_text(outcome, command, batch)
    path = write_text_atomically(outputdir / SUCCESS_FILE, text)
    table = results_table(outcome)
    write_text_atomically(outputdir / RESULTS_TABLE, table)
    (outputdir / ERROR_FILE).unlink(missing_ok=True)
    logger.info("results, as pacsretrieve --series numbers them:\n%s", table.rstrip())
    logger.debug("wrote %s", path)
    return path


def write_error(outputdir: Path, message: str) -> Path:
    """Write ``error.txt``; remove a ``success.txt`` of an earlier run."""
    document = {"status": "error", "message": message}
    path = write_atomically(outputdir / ERROR_FILE, document)
    (outputdir / SUCCESS_FILE).unlink(missing_ok=True)
    (outputdir / RESULTS_TABLE).unlink(missing_ok=True)
    return path


def write_atomically(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as UTF-8 JSON at ``path``, whole or not at all."""
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return write_text_atomically(path, text)


def document_text(head: dict[str, Any], rows: list[str]) -> str:
    """Return JSON text of ``head`` indented, then ``data``: the rows, one a line.

    Indented all through, JSON is written by the json module's Python encoder,
    which takes longer than the query itself for thousands of rows.
    """
    text = json.dumps(head, ensure_ascii=False, indent=2)
    body = "[\n" + ",\n".join("    " + row for row in rows) + "\n  ]" if rows else "[]"
    if not head:
        return f'{{\n  "data": {body}\n}}\n'
    return f'{text[:-2]},\n  "data": {body}\n}}\n'


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 at ``path``, whole or not at all."""
    try:
        fd, tmp = create_temp(path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp makes the file private; the results are for the next plugin.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _unwritable(path, exc) from exc
    return path


def _unwritable(path: Path, exc: OSError) -> InputError:
    """Say that a results file cannot be written, and why."""
    return InputError(
        f"{path.name} cannot be written in {path.parent}: {exc.strerror}; give a "
        "writable output directory"
    )


def invocation(
    parser: argparse.ArgumentParser,
    options: argparse.Namespace,
    inputdir: Path,
    outputdir: Path,
) -> str:
    """Return a command line that runs this query again.

    It names every option whose value is not the built-in default, by the
    kebab-case flag, whether it came from the command line or the environment.
    """
    words = [PROGRAM]
    for action in parser._actions:
        if not action.option_strings or action.dest in _UNSHOWN:
            continue
        value = getattr(options, action.dest, action.default)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        words.extend([flag] if action.nargs == 0 else [flag, str(value)])
    words.extend([str(inputdir), str(outputdir)])
    return shlex.join(words)
