"""The retrieve report: what was asked, what the PACS said, what arrived."""

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pacscommon.errors import EXIT_FAILED, EXIT_OK
from pacsretrieve.move import MoveOutcome
from pacsretrieve.selection import SeriesRequest

REPORT_FILE = "report.json"


@dataclass
class SeriesResult:
    """The fate of one requested series."""

    request: SeriesRequest
    outcome: MoveOutcome | None = None
    arrived: int = 0
    path: str | None = None
    error: str | None = None

    @property
    def complete(self) -> bool:
        """Return whether everything the PACS sent, and nothing less, is here."""
        if self.error is not None or self.outcome is None:
            return False
        o = self.outcome
        return o.failed == 0 and o.remaining == 0 and self.arrived >= o.delivered

    def as_json(self) -> dict[str, Any]:
        """Return the result as the report writes it."""
        o = self.outcome
        return {
            "row": self.request.row,
            "StudyInstanceUID": self.request.StudyInstanceUID,
            "SeriesInstanceUID": self.request.SeriesInstanceUID,
            "expected": self.request.expected,
            "pacs": None
            if o is None
            else {
                "status": None if o.status is None else f"0x{o.status:04X}",
                "completed": o.completed,
                "failed": o.failed,
                "warning": o.warning,
                "remaining": o.remaining,
                "failed_instances": o.failed_instances,
            },
            "arrived": self.arrived,
            "path": self.path,
            "complete": self.complete,
            "error": self.error,
        }


@dataclass
class RetrieveReport:
    """Count the outcomes of a run and decide its exit code."""

    command: str
    results: list[SeriesResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SeriesResult]:
        """Return the series not retrieved whole."""
        return [r for r in self.results if not r.complete]

    def exit_code(self) -> int:
        """Return 0 if every series arrived whole, else 1."""
        return EXIT_FAILED if self.failed else EXIT_OK

    def summary(self) -> str:
        """Return the one-line summary of the run."""
        instances = sum(r.arrived for r in self.results)
        return (
            f"{len(self.results) - len(self.failed)} of {len(self.results)} series "
            f"retrieved whole, {instances} instances"
        )

    def first_error(self) -> str:
        """Return the reason the first failed series gives."""
        for result in self.failed:
            if result.error:
                return result.error
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
        document = {
            "status": "success" if not self.failed else "partial",
            "complete": not self.failed,
            "command": self.command,
            "summary": self.summary(),
            "series": [r.as_json() for r in self.results],
        }
        return write_json(outputdir / REPORT_FILE, document)


def write_json(path: Path, document: Any) -> Path:
    """Write ``document`` as JSON to ``path`` through a temporary file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
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
