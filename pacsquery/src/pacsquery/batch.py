"""Read a batch of queries: one query per row of a CSV or JSON file.

The file is ``--batch-file`` (relative to INPUTDIR unless absolute) or, with no
such option, ``INPUTDIR/queries.csv`` or ``INPUTDIR/queries.json``, whichever is
there (both is an error). A CSV file has a header of column names; a JSON file
is a list of objects. A column name is a DICOM keyword (``AccessionNumber``), a
tag (``0008,0050``) or the name of a filter option (``accession-number``,
``--study-date``, ``patientID``). An empty cell does not constrain its row. A
row is named by the line it starts on in a CSV file, and by its place in the
list in a JSON file (``queries.json item 2``), where objects may share a line.
"""

import csv
import io
import json
from _csv import Reader as CsvReader
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pacscommon.errors import InputError
from pacsquery.identifiers import Criterion, check_matching_key
from pacsquery.values import resolve_key

BATCH_FILES = ("queries.csv", "queries.json")


@dataclass(frozen=True)
class BatchQuery:
    """One row of a batch file: where it is, and what it asks."""

    label: str
    criteria: tuple[Criterion, ...]

    @property
    def keywords(self) -> set[str]:
        """Return the keywords this row gives a value for."""
        return {c.keyword for c in self.criteria}


def find_batch_file(inputdir: Path, name: str) -> Path | None:
    """Return the batch file of a run, or ``None`` if it has none."""
    if name.strip():
        path = inputdir / name.strip()
        if not path.is_file():
            raise InputError(
                f"--batch-file {name!r}: no such file in {inputdir}; give a "
                "file name relative to the input directory, or an absolute path"
            )
        return path
    present = [inputdir / n for n in BATCH_FILES if (inputdir / n).is_file()]
    if len(present) > 1:
        raise InputError(
            f"{inputdir} holds both {' and '.join(BATCH_FILES)}; keep one, or "
            "choose one with --batch-file"
        )
    return present[0] if present else None


def read_batch(path: Path, options: Mapping[str, str]) -> list[BatchQuery]:
    """Return the queries of a batch file; ``options`` maps option names to keys."""
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"batch file {path} cannot be read: {exc}") from exc
    if path.suffix.lower() == ".json":
        rows = json_rows(text, path.name)
    else:
        rows = csv_rows(text, path.name)
        for column in next(csv.reader(io.StringIO(text, newline="")), []):
            column_keyword(column, options, f"{path.name} line 1")
    queries = [batch_query(where, row, options) for where, row in rows]
    if not queries:
        raise InputError(f"batch file {path} holds no query; give one per row")
    return queries


def csv_rows(text: str, name: str) -> list[tuple[str, dict[str, str]]]:
    """Return each CSV row with the line it starts on, checked against the header."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next_csv_row(reader, name)
    if not header or not any(h.strip() for h in header):
        raise InputError(f"{name} line 1: no header; name the columns first")
    rows: list[tuple[str, dict[str, str]]] = []
    while True:
        where = f"{name} line {reader.line_num + 1}"
        cells = next_csv_row(reader, name)
        if cells is None:
            return rows
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise InputError(
                f"{where}: {len(cells)} cells, the header has {len(header)}; "
                "quote values that hold a comma"
            )
        rows.append((where, dict(zip(header, cells, strict=True))))


def next_csv_row(reader: CsvReader, name: str) -> list[str] | None:
    """Return the next row of a CSV reader, or ``None`` at the end of the file.

    A malformed row is an input error naming the line the row starts on.
    """
    start = reader.line_num + 1
    try:
        return next(reader, None)
    except csv.Error as exc:
        problem = str(exc)
        if "unexpected end of data" in problem:
            problem = "a quote opened here is never closed"
        raise InputError(
            f"{name} line {start}: {problem}; close each quoted value, and write "
            'a quote inside one as two ("")'
        ) from exc


def json_rows(text: str, name: str) -> list[tuple[str, dict[str, str]]]:
    """Return each object of a JSON list, named by its place in the list.

    Several objects may share a line, so a row is named ``item N`` (from 1).
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{name} line {exc.lineno}: not valid JSON ({exc.msg}); write a list "
            'of objects such as [{"PatientID": "P1", "StudyDate": "2020"}]'
        ) from exc
    if not isinstance(document, list):
        raise InputError(f"{name} line 1: not a list of objects, one per query")
    rows = []
    for number, item in enumerate(document, start=1):
        where = f"{name} item {number}"
        rows.append((where, json_object(item, where)))
    return rows


def json_object(item: Any, where: str) -> dict[str, str]:
    """Return a JSON query object as column to text, or raise naming the item."""
    if not isinstance(item, dict):
        raise InputError(f"{where}: not an object of column to value")
    row = {}
    for key, value in item.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            if value is not None:
                raise InputError(f"{where}: {key} is not a text or a number")
        row[str(key)] = "" if value is None else str(value)
    return row


def batch_query(
    where: str, row: Mapping[str, str], options: Mapping[str, str]
) -> BatchQuery:
    """Return the query of one row; raise naming ``where`` it is if malformed."""
    criteria = []
    for column, value in row.items():
        keyword = column_keyword(column, options, where)
        if value.strip():
            criteria.append(Criterion(keyword, value, f"{where} {column.strip()}"))
    if not criteria:
        raise InputError(f"{where}: every cell is empty; give at least one value")
    shown = ", ".join(f"{c.keyword}={c.value.strip()}" for c in criteria)
    return BatchQuery(f"{where}: {shown}", tuple(criteria))


def column_keyword(column: str, options: Mapping[str, str], where: str) -> str:
    """Return the keyword a column names: a keyword, a tag or an option name."""
    name = column.strip()
    keyword = options.get(name.removeprefix("--"))
    if keyword is None:
        keyword = resolve_key(name, where)
    check_matching_key(keyword, f"{where} column {name!r}")
    return keyword
