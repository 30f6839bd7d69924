"""The series tree's names: sanitizer, padding, hash, limits."""

import os

import pytest

from pacscommon.layout import (
    MAX_COMPONENT_BYTES,
    fit_component,
    instance_name,
    sanitize,
    series_hash,
    series_path,
    uid_file_name,
)
from pacscommon.seahash import seahash

ORDINARY = {
    "PatientID": "1449c1d",
    "PatientName": "anonymized^patient",
    "PatientBirthDate": "20090701",
    "StudyDescription": "MR-Brain w/o Contrast",
    "AccessionNumber": "98edede8b2",
    "StudyDate": "20130308",
    "SeriesNumber": "5",
    "SeriesDescription": "SAG MPRAGE 220 FOV",
    "SeriesInstanceUID": "1.3.12.2.1107.5.2.19.45152.2013030808061520200285270.0.0.0",
    "InstanceNumber": "12",
    "SOPInstanceUID": "1.3.12.2.1107.5.2.19.45152.2013030808105561901985453",
}


def test_known_seahash_value() -> None:
    assert series_hash(ORDINARY["SeriesInstanceUID"]) == "a27cf06"


def test_seahash_matches_the_reference_package() -> None:
    reference = pytest.importorskip("seahash")
    for n in range(0, 80):
        data = os.urandom(n)
        assert seahash(data) == reference.hash(data)


def test_ordinary_series_path() -> None:
    path = series_path(ORDINARY)
    assert path.patient == "1449c1d-anonymized_patient-20090701"
    assert path.study == "MR-Brain_w_o_Contrast-98edede8b2-20130308"
    assert path.series == "00005-SAG_MPRAGE_220_FOV-a27cf06"
    assert instance_name(ORDINARY) == (
        "0012-1.3.12.2.1107.5.2.19.45152.2013030808105561901985453.dcm"
    )


def test_missing_values_use_keyword_or_empty() -> None:
    attrs = {"SeriesInstanceUID": "1.2.3", "SOPInstanceUID": "1.2.3.4"}
    path = series_path(attrs)
    assert path.patient == "PatientID--"
    assert path.study == "StudyDescription-AccessionNumber-StudyDate"
    assert path.series.startswith("SeriesNumber-SeriesDescription-")
    assert instance_name(attrs) == "InstanceNumber-1.2.3.4.dcm"


def test_non_integer_numbers_are_text() -> None:
    attrs = dict(ORDINARY, SeriesNumber="3a", InstanceNumber=" 7 ")
    assert series_path(attrs).series.startswith("3a-")
    assert instance_name(attrs).startswith("0007-")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("  a b  ", "a_b"),
        ("\x00x\x00", "x"),
        ("../../x", ".._.._x"),
        ("/etc/passwd", "_etc_passwd"),
        ("Müller^Jürgen", "M_ller_J_rgen"),
        ("a\x00b", "a_b"),
    ],
)
def test_sanitize(value: str, expected: str) -> None:
    assert sanitize(value) == expected


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_component_is_never_a_special_name(name: str) -> None:
    assert fit_component(name) not in ("", ".", "..")


def test_long_components_are_cut_and_stay_unique() -> None:
    a = fit_component("x" * 300 + "a")
    b = fit_component("x" * 300 + "b")
    assert len(a.encode()) <= MAX_COMPONENT_BYTES
    assert a != b
    long_sop = dict(ORDINARY, SOPInstanceUID="1." * 200)
    name = instance_name(long_sop)
    assert name.endswith(".dcm") and len(name.encode()) <= MAX_COMPONENT_BYTES


def test_hostile_values_stay_single_components() -> None:
    attrs = dict(
        ORDINARY,
        PatientID="../../x",
        SeriesDescription="/etc/passwd",
        StudyDescription="..",
        SOPInstanceUID="../../../evil",
    )
    path = series_path(attrs)
    for part in (path.patient, path.study, path.series, instance_name(attrs)):
        assert "/" not in part and part not in ("", ".", "..")


def test_uid_file_names() -> None:
    assert uid_file_name("1.2.840.5", ".json") == "1.2.840.5.json"
    for hostile in ("../x", "a/b", "..", "1..2", "x" * 300):
        name = uid_file_name(hostile, ".json")
        assert "/" not in name and not name.startswith("..")
        assert len(name.encode()) <= MAX_COMPONENT_BYTES
