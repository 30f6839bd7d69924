"""The levels of the query information models, and the keys of each level.

- Study Root (the default): STUDY, then SERIES. The patient's attributes are
  asked at STUDY level (PS3.4 C.6.2.1).
- Patient Root: PATIENT, then STUDY, then SERIES (PS3.4 C.6.1.1).

A query walks its model from the top down to its depth: SERIES (a row per
series) or STUDY (a row per study).
"""

from pacscommon.errors import InputError

PATIENT = "PATIENT"
STUDY = "STUDY"
SERIES = "SERIES"
STUDY_ROOT = "study"
PATIENT_ROOT = "patient"
#: The levels each information model walks, from the top.
MODEL_LEVELS = {
    STUDY_ROOT: (STUDY, SERIES),
    PATIENT_ROOT: (PATIENT, STUDY, SERIES),
}
#: Each level's unique key (PS3.4 C.6.1.1 and C.6.2.1).
UNIQUE_KEYS = {
    PATIENT: "PatientID",
    STUDY: "StudyInstanceUID",
    SERIES: "SeriesInstanceUID",
}
#: The levels a row can stand for, as ``--level`` names them.
DEPTHS = {"study": STUDY, "series": SERIES}

# PS3.4 C.6.1.1.2 (Table C.6-1): attributes of the Patient IE.
PATIENT_LEVEL_KEYWORDS = frozenset(
    {
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "OtherPatientIDs",
        "OtherPatientNames",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "PatientBirthName",
        "PatientMotherBirthName",
        "PatientComments",
        "PatientSpeciesDescription",
        "PatientBreedDescription",
        "ResponsiblePerson",
        "ResponsibleOrganization",
        "PatientIdentityRemoved",
        "EthnicGroup",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    }
)
# PS3.4 C.6.1.1.3 (Table C.6-2): attributes of the Study IE.
STUDY_LEVEL_KEYWORDS = frozenset(
    {
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyInstanceUID",
        "ModalitiesInStudy",
        "SOPClassesInStudy",
        "StudyDescription",
        "ReferringPhysicianName",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "AdmittingDiagnosesDescription",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "Occupation",
        "AdditionalPatientHistory",
        "OtherStudyNumbers",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    }
)


def level_of(keyword: str, model: str = STUDY_ROOT) -> str:
    """Return the query level at which ``keyword`` is asked in ``model``."""
    if keyword in PATIENT_LEVEL_KEYWORDS:
        return PATIENT if model == PATIENT_ROOT else STUDY
    return STUDY if keyword in STUDY_LEVEL_KEYWORDS else SERIES


def walked_levels(model: str, depth: str) -> tuple[str, ...]:
    """Return the levels a query of ``model`` asks, from the top to ``depth``."""
    levels = MODEL_LEVELS[model]
    return levels[: levels.index(depth) + 1]


def check_depth(text: str) -> str:
    """Return the level that ``--level`` names, or raise an input error."""
    depth = DEPTHS.get(text.strip().lower())
    if depth is None:
        raise InputError(
            f"--level {text!r} is not a level: use series (a row per series) or "
            "study (a row per study)"
        )
    return depth
