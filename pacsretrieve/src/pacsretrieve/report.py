"""The retrieve report: what was asked, what the PACS said, what arrived."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pacscommon.errors import EXIT_FAILED, EXIT_OK
from pacscommon.files import create_temp
from pacsretrieve.jobs import RetrieveJob
from pacsretrieve.move import MoveOutcome
from pacsretrieve.selection import SeriesRequest

REPORT_FILE = "report.json"


@dataclass
class SeriesResult:
    """The fate of one requested series."""

    request: SeriesRequest
    job: RetrieveJob | None = None
    arrived: int = 0
    whole: bool = False  # the job's instances the PACS sent are all on disk
    path: str | None = None
    instances: list[dict[str, Any]] = field(default_factory=list)
    preview: Path | None = None
    error: str | None = None

    @property
    def outcome(self) -> MoveOutcome | None:
        """Return what the PACS reported of the job that brought the series."""
        return None if self.job is None else self.job.outcome

    @property
    def reason(self) -> str | None:
        """Return why the series failed, if something said so."""
        if self.error is not None:
            return self.error
        return None if self.job is None else self.job.error

    @property
    def complete(self) -> bool:
        """Return whether everything the PACS sent, and nothing less, is here."""
        o = self.outcome
        if self.reason is not None or o is None:
            return False
        return o.failed == 0 and o.remaining == 0 and self.whole

    @property
    def matches_query(self) -> bool | None:
        """Return whether as many instances arrived as the query counted."""
        expected = self.request.expected
        return None if expected is None else expected == self.arrived

    def as_json(self) -> dict[str, Any]:
        """Return the result as the report writes it."""
        return {
            "row": self.request.row,
            "StudyInstanceUID": self.request.StudyInstanceUID,
            "SeriesInstanceUID": self.request.SeriesInstanceUID,
            "expected": self.request.expected,
            "level": None if self.job is None else self.job.level,
            "attempts": 0 if self.job is None else self.job.attempts,
            "pacs": _outcome_json(self.outcome),
            "arrived": self.arrived,
            "matches_query": self.matches_query,
            "path": self.path,
            "complete": self.complete,
            "error": self.reason,
            "instances": self.instances,
            "preview": None if self.preview is None else self.preview.as_posix(),
        }


def _outcome_json(o: MoveOutcome | None) -> dict[str, Any] | None:
    """Return what the PACS reported, as the report writes it."""
    if o is None:
        return None
    return {
        "status": None if o.status is None else f"0x{o.status:04X}",
        "completed": o.completed,
        "failed": o.failed,
        "warning": o.warning,
        "remaining": o.remaining,
        "FailedSOPInstanceUIDList": o.failed_instances,
    }


@dataclass
class RetrieveReport:
    """Count the outcomes of a run and decide its exit code."""

    command: str
    mode: str = "move"
    dry_run: bool = False
    results: list[SeriesResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SeriesResult]:
        """Return the series not retrieved whole."""
        return [r for r in self.results if not r.complete]

    def exit_code(self) -> int:
        """Return 0 if every series arrived whole (or a dry run), else 1."""
        return EXIT_FAILED if self.failed and not self.dry_run else EXIT_OK

    def summary(self) -> str:
        """Return the one-line summary of the run."""
        if self.dry_run:
            expected = sum(r.request.expected or 0 for r in self.results)
            return f"dry run: {len(self.results)} series, {expected} instances"
        instances = sum(r.arrived for r in self.results)
        return (
            f"{len(self.results) - len(self.failed)} of {len(self.results)} series "
            f"retrieved whole, {instances} instances"
        )

    def first_error(self) -> str:
        """Return the reason the first failed series gives."""
        for result in self.failed:
            if result.reason:
                return result.reason
            if result.outcome is not None:
                o = result.outcome
                return (
                    f"series {result.request.SeriesInstanceUID}: {result.arrived} "
                    f"arrived, the PACS reported {o.completed} completed, "
                    f"{o.failed} failed, {o.warning} warning"
                )
        return ""

    def write(self, outputdir: Path) -> Path:
        """Write the report to ``outputdir`` atomically; return its path."""
        outputdir.mkdir(parents=True, exist_ok=True)
        status = "success" if not self.failed else "partial"
        document = {
            "status": "dry-run" if self.dry_run else status,
            "complete": not self.dry_run and not self.failed,
            "command": self.command,
            "mode": self.mode,
            "summary": self.summary(),
            "series": [r.as_json() for r in self.results],
        }
        return write_json(outputdir / REPORT_FILE, document)


def write_json(path: Path, document: Any) -> Path:
    """Write ``document`` as JSON to ``path`` through a temporary file."""
    fd, tmp = create_temp(path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["REPORT_FILE", "RetrieveReport", "SeriesResult", "write_json"]
