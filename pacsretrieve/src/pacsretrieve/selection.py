"""Choose the series to pull from the rows of a results file.

``--series`` is a comma-separated list of tokens: digits are a row's ``uid``
value, ``A-B`` a range of them, a token with a dot a SeriesInstanceUID; an
empty list means every row.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from pacscommon.errors import InputError, ResultsFileError, SelectionError
from pacscommon.results import SUCCESS_FILE, load_rows

_RANGE = re.compile(r"([0-9]+)-([0-9]+)")


@dataclass(frozen=True)
class SeriesRequest:
    """One series to pull, as the results file describes it."""

    row: int
    StudyInstanceUID: str
    SeriesInstanceUID: str
    PatientID: str
    expected: int | None  # NumberOfSeriesRelatedInstances, when known


def results_path(inputdir: Path, series_file: str) -> Path:
    """Return the results file to read: ``--series-file`` or the one in INPUTDIR."""
    if series_file:
        path = Path(series_file)
        return path if path.is_absolute() else inputdir / path
    default = inputdir / SUCCESS_FILE
    if default.exists():
        return default
    # ChRIS's newer query plugin writes search_results_*.json.
    found = sorted(inputdir.glob("search_results*.json"))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ResultsFileError(
            f"several results files in {inputdir} ({names}); choose one with "
            "--series-file"
        )
    return default


def load_requests(path: Path) -> list[SeriesRequest]:
    """Read the results file at ``path`` into series requests."""
    rows = load_rows(path)
    if not rows:
        raise ResultsFileError(
            f"results file {path} lists no series; nothing to retrieve"
        )
    requests = []
    for position, row in enumerate(rows):
        missing = [
            k for k in ("StudyInstanceUID", "SeriesInstanceUID") if not row.get(k)
        ]
        if missing == ["SeriesInstanceUID"] and "NumberOfStudyRelatedSeries" in row:
            raise ResultsFileError(
                f"results file {path}: row {position} is a study, not a series "
                "(pacsquery --level study); run pacsquery at series level, its "
                "default, to choose the series to pull"
            )
        if missing:
            raise ResultsFileError(
                f"results file {path}: row {position} has no {' or '.join(missing)}"
            )
        requests.append(_request(row, position, path))
    return requests


def _request(row: dict[str, str], position: int, path: Path) -> SeriesRequest:
    """Return the request of one row."""
    number = row.get("uid", str(position))
    if not number.isdigit():
        raise ResultsFileError(f"results file {path}: row {position} uid {number!r}")
    expected = row.get("NumberOfSeriesRelatedInstances", "").strip()
    return SeriesRequest(
        row=int(number),
        StudyInstanceUID=row["StudyInstanceUID"].strip(),
        SeriesInstanceUID=row["SeriesInstanceUID"].strip(),
        PatientID=row.get("PatientID", ""),
        expected=int(expected) if expected.isdigit() else None,
    )


def select(requests: list[SeriesRequest], spec: str) -> list[SeriesRequest]:
    """Return the requests ``spec`` chooses, in the results file's order."""
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        return list(requests)
    chosen: set[int] = set()
    for token in tokens:
        matched = _match(requests, token)
        if not matched:
            raise SelectionError(
                f"--series {token!r} matches no row of the results file; rows "
                f"are numbered 0 to {max(r.row for r in requests)}"
            )
        chosen.update(matched)
    return [r for r in requests if r.row in chosen]


def _match(requests: list[SeriesRequest], token: str) -> set[int]:
    """Return the row numbers one token chooses."""
    if token.isdigit():
        return {r.row for r in requests if r.row == int(token)}
    span = _RANGE.fullmatch(token)
    if span:
        low, high = int(span.group(1)), int(span.group(2))
        if low > high:
            raise InputError(
                f"--series range {token!r} is reversed; write {high}-{low}"
            )
        return {r.row for r in requests if low <= r.row <= high}
    if "." in token:
        return {r.row for r in requests if r.SeriesInstanceUID == token}
    raise InputError(
        f"--series token {token!r} is neither a row number, a range A-B, nor a "
        "SeriesInstanceUID"
    )
