"""The human-readable summary of a query: its studies and their series.

One block per study (date, modalities, description, how many series and
instances), then one line per series with the row number that
``pacsretrieve --series`` takes; a query of studies only (``--level study``)
has one line per study instead. No patient's name, ID or birth date appears,
so the table can go to the log at INFO.
"""

from collections.abc import Collection, Iterable, Sequence

from pacsquery.levels import STUDY
from pacsquery.query import QueryOutcome, Record

RESULTS_TABLE = "results.txt"
_HEADER = ("row", "series", "modality", "instances", "description")
_STUDY_HEADER = ("row", "date", "modalities", "series", "instances", "description")


def results_table(outcome: QueryOutcome) -> str:
    """Return the table of studies and series, as text lines."""
    state = "complete" if outcome.complete else "cut short by the PACS"
    lines = [
        f"{outcome.studies} studies, {outcome.series_count} series, "
        f"{outcome.instance_count} instances ({state})"
    ]
    if outcome.depth == STUDY:
        return "\n".join([*lines, "", *studies_block(outcome.rows)]) + "\n"
    for rows in by_study(outcome.rows):
        lines.append("")
        lines.extend(study_block(rows))
    return "\n".join(lines) + "\n"


def studies_block(rows: Sequence[Record]) -> list[str]:
    """Return one line per study row: date, modalities, counts, description."""
    cells = [
        (
            str(number),
            show_date(row.get("StudyDate", "")),
            row.get("ModalitiesInStudy", ""),
            row.get("NumberOfStudyRelatedSeries", ""),
            row.get("NumberOfStudyRelatedInstances", ""),
            row.get("StudyDescription", ""),
        )
        for number, row in enumerate(rows)
    ]
    return aligned([_STUDY_HEADER, *cells], right=(0, 3, 4))


def by_study(rows: Sequence[Record]) -> list[list[tuple[int, Record]]]:
    """Return the numbered rows grouped by study, in the order they came."""
    groups: dict[str, list[tuple[int, Record]]] = {}
    for number, row in enumerate(rows):
        groups.setdefault(row.get("StudyInstanceUID", ""), []).append((number, row))
    return list(groups.values())


def study_block(rows: list[tuple[int, Record]]) -> list[str]:
    """Return the lines of one study: its header, then its series."""
    study = rows[0][1]
    instances = sum(_count(row) for _, row in rows)
    header = (
        f"study {show_date(study.get('StudyDate', ''))}  "
        f"{study.get('ModalitiesInStudy', '') or '-'}  "
        f"{study.get('StudyDescription', '') or '(no description)'}  "
        f"({len(rows)} series, {instances} instances)"
    )
    cells = [
        (
            str(number),
            row.get("SeriesNumber", ""),
            row.get("Modality", ""),
            row.get("NumberOfSeriesRelatedInstances", ""),
            row.get("SeriesDescription", ""),
        )
        for number, row in rows
    ]
    return [header, *aligned([_HEADER, *cells])]


def aligned(
    table: Iterable[Sequence[str]], right: Collection[int] = (0, 1, 3)
) -> list[str]:
    """Return the cells as lines of padded columns; columns ``right`` to the right."""
    rows = [list(r) for r in table]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = "  " + "  ".join(
        f"{{{i}:{'>' if i in right else '<'}{width}}}" for i, width in enumerate(widths)
    )
    return [line.format(*row).rstrip() for row in rows]


def show_date(value: str) -> str:
    """Return a DICOM date as YYYY-MM-DD, or as it is if it is not one."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value or "(no date)"


def _count(row: Record) -> int:
    """Return a row's instance count, 0 if the PACS gave none."""
    text = row.get("NumberOfSeriesRelatedInstances", "").strip()
    return int(text) if text.isdigit() else 0
