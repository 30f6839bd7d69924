"""The retrieve jobs of a pull: one C-MOVE or C-GET each, of a series or a study."""

from dataclasses import dataclass, field

from pacsretrieve.move import MoveOutcome
from pacsretrieve.selection import SeriesRequest

SERIES_LEVEL = "SERIES"
STUDY_LEVEL = "STUDY"


@dataclass
class RetrieveJob:
    """One retrieve request and what became of it."""

    level: str
    StudyInstanceUID: str
    requests: list[SeriesRequest]
    outcome: MoveOutcome | None = None
    error: str | None = None
    attempts: int = 0

    @property
    def series_uids(self) -> list[str]:
        """Return the SeriesInstanceUIDs the job brings."""
        return [r.SeriesInstanceUID for r in self.requests]

    def describe(self) -> str:
        """Return how log lines and messages name the job."""
        if self.level == STUDY_LEVEL:
            return f"study {self.StudyInstanceUID} ({len(self.requests)} series)"
        return f"series {self.requests[0].SeriesInstanceUID}"


@dataclass
class StudyChoice:
    """The chosen series of one study, in the results file's order."""

    StudyInstanceUID: str
    requests: list[SeriesRequest] = field(default_factory=list)


def by_study(requests: list[SeriesRequest]) -> list[StudyChoice]:
    """Group the chosen series by study, keeping the first-seen order."""
    studies: dict[str, StudyChoice] = {}
    for request in requests:
        uid = request.StudyInstanceUID
        studies.setdefault(uid, StudyChoice(uid)).requests.append(request)
    return list(studies.values())


def plan_jobs(
    requests: list[SeriesRequest], whole_studies: set[str]
) -> list[RetrieveJob]:
    """Return one study-level job per study in ``whole_studies``, else per series."""
    jobs = []
    for study in by_study(requests):
        uid = study.StudyInstanceUID
        if uid in whole_studies and len(study.requests) > 1:
            jobs.append(RetrieveJob(STUDY_LEVEL, uid, study.requests))
            continue
        jobs.extend(RetrieveJob(SERIES_LEVEL, uid, [r]) for r in study.requests)
    return jobs
