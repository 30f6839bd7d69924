"""Fuzz the series tree's naming: any sender values, always one safe path.

Run: ``python tests/fuzz/fuzz_layout.py [libFuzzer options]``, for example
``-max_total_time=600`` for a longer run.
"""

import sys

import atheris

with atheris.instrument_imports():
    from pacscommon.layout import (
        MAX_COMPONENT_BYTES,
        instance_name,
        series_path,
        uid_file_name,
    )

KEYWORDS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "StudyDescription",
    "AccessionNumber",
    "StudyDate",
    "SeriesNumber",
    "SeriesDescription",
    "SeriesInstanceUID",
    "InstanceNumber",
    "SOPInstanceUID",
)


def check_component(part: str) -> None:
    """Fail unless ``part`` is one safe path component."""
    assert part not in ("", ".", ".."), repr(part)
    assert "/" not in part and "\x00" not in part, repr(part)
    assert len(part.encode()) <= MAX_COMPONENT_BYTES, len(part.encode())


def test_one_input(data: bytes) -> None:
    """Name one instance from fuzzed attribute values."""
    fdp = atheris.FuzzedDataProvider(data)
    attrs: dict[str, str | None] = {}
    for keyword in KEYWORDS:
        if fdp.ConsumeBool():
            attrs[keyword] = fdp.ConsumeUnicodeNoSurrogates(
                fdp.ConsumeIntInRange(0, 400)
            )
        else:
            attrs[keyword] = None
    path = series_path(attrs)
    for part in (path.patient, path.study, path.series, instance_name(attrs)):
        check_component(part)
    check_component(uid_file_name(attrs.get("SeriesInstanceUID") or "", ".json"))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
