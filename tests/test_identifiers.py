"""Unit tests of pacsquery's identifiers: keys, levels, dates, UIDs (no network)."""

import pytest
from pydicom.dataset import Dataset

from pacscommon.errors import InputError
from pacsquery.identifiers import (
    SERIES,
    SERIES_COLUMNS,
    STUDY,
    STUDY_COLUMNS,
    UTF8,
    Criterion,
    build_query,
    level_of,
    parse_filter,
    parse_return_keys,
    series_identifier,
    study_identifier,
)
from pacsquery.values import matching_value, parse_date, parse_uids


def criterion(keyword: str, value: str) -> Criterion:
    """Return a criterion as an option of the same name would give it."""
    return Criterion(keyword, value, f"--{keyword}")


def empty_keys(ds: Dataset) -> set[str]:
    """Return the keywords of ``ds`` whose value is empty (universal matching)."""
    return {elem.keyword for elem in ds if elem.value in (None, "", [])}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20040826", "20040826"),
        ("2004-08-26", "20040826"),
        (" 2004-08-26 ", "20040826"),
        ("20040101-20041231", "20040101-20041231"),
        ("2004-01-01-2004-12-31", "20040101-20041231"),
        ("20040101 - 2004-12-31", "20040101-20041231"),
        ("2004-01-01-", "20040101-"),
        ("-20041231", "-20041231"),
        ("-2004-12-31", "-20041231"),
        ("20240229", "20240229"),
        ("20040826-20040826", "20040826"),
        ("", ""),
        ("*", ""),
    ],
)
def test_parse_date_accepts_dates_and_ranges(text: str, expected: str) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-30",
        "20230230",
        "20231301",
        "20230001",
        "2023-2-3",
        "26/08/2004",
        "-",
        "2004010120041231",
        "20041231-20040101",
        "2004*",
        "20040101--20041231",
        "yesterday",
    ],
)
def test_parse_date_refuses_what_is_not_a_date(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_date(text, "--study-date")
    assert caught.value.exit_code == 2
    assert "--study-date" in str(caught.value)


def test_parse_date_names_the_impossible_day() -> None:
    with pytest.raises(InputError, match="2023-02-30 is not a date"):
        parse_date("2023-02-30")


def test_parse_uids_joins_several_with_a_backslash() -> None:
    assert parse_uids("1.2.3", "--study-uid") == "1.2.3"
    assert parse_uids("1.2.3, 1.2.4", "--study-uid") == "1.2.3\\1.2.4"
    assert parse_uids("1.2.3\\1.2.4", "--study-uid") == "1.2.3\\1.2.4"


@pytest.mark.parametrize("text", ["1.2.x", "1..2", ".1.2", "1.2.", "1" * 65])
def test_parse_uids_refuses_malformed_uids(text: str) -> None:
    with pytest.raises(InputError, match="is not a UID"):
        parse_uids(text, "--series-uid")


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("PatientName", "Doe^J*", "Doe^J*"),
        ("PatientName", "  Doe^John ", "Doe^John"),
        ("PatientID", "*", ""),
        ("StudyInstanceUID", "*", ""),
        ("StudyDate", "*", ""),
        ("Modality", "mr", "MR"),
        ("ModalitiesInStudy", "ct,MR", "CT\\MR"),
        ("StudyDate", "2004-08-26", "20040826"),
        ("SeriesDate", "2004-08-26-", "20040826-"),
        ("SeriesInstanceUID", "1.2.3,1.2.4", "1.2.3\\1.2.4"),
        ("StudyDescription", "Head, neck", "Head, neck"),
    ],
)
def test_matching_value_normalizes_by_value_representation(
    keyword: str, value: str, expected: str
) -> None:
    assert matching_value(keyword, value, f"--{keyword}") == expected


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("StudyInstanceUID", "1.2.*"),
        ("SeriesInstanceUID", "1.2.?"),
        ("SeriesNumber", "1*"),
        ("StudyTime", "12*"),
    ],
)
def test_matching_value_refuses_wildcards_where_the_standard_does(
    keyword: str, value: str
) -> None:
    with pytest.raises(InputError, match="wildcards are not allowed"):
        matching_value(keyword, value, f"--{keyword}")


def test_levels_follow_the_study_root_model() -> None:
    for keyword in STUDY_COLUMNS:
        assert level_of(keyword) == STUDY
    for keyword in SERIES_COLUMNS:
        assert level_of(keyword) == SERIES
    assert level_of("StudyTime") == STUDY
    assert level_of("BodyPartExamined") == SERIES


def test_build_query_without_filters_asks_every_column_with_empty_values() -> None:
    keys = build_query([])
    assert keys.columns == STUDY_COLUMNS + SERIES_COLUMNS
    assert set(keys.study) == set(STUDY_COLUMNS)
    assert set(keys.series) == set(SERIES_COLUMNS)
    assert keys.matching == {}
    assert keys.character_set == ""


def test_build_query_puts_each_filter_at_its_level() -> None:
    keys = build_query(
        [
            criterion("PatientName", "Doe^*"),
            criterion("StudyDate", "2004-08-26"),
            criterion("Modality", "MR"),
            criterion("SeriesDescription", "*RLE*"),
            criterion("SeriesInstanceUID", "1.2.3"),
            criterion("StudyInstanceUID", "1.2"),
        ]
    )
    assert keys.study["PatientName"] == "Doe^*"
    assert keys.study["StudyDate"] == "20040826"
    assert keys.study["StudyInstanceUID"] == "1.2"
    assert keys.series["Modality"] == "MR"
    assert keys.series["SeriesDescription"] == "*RLE*"
    assert keys.series["SeriesInstanceUID"] == "1.2.3"
    assert "Modality" not in keys.study
    assert "PatientName" not in keys.series


def test_build_query_adds_filter_and_return_keys_as_columns() -> None:
    keys = build_query(
        [criterion("BodyPartExamined", "HEAD")], ["StudyTime", "PatientName"]
    )
    assert keys.columns[-2:] == ("BodyPartExamined", "StudyTime")
    assert keys.columns.count("PatientName") == 1
    assert keys.series["BodyPartExamined"] == "HEAD"
    assert keys.study["StudyTime"] == ""


def test_build_query_refuses_one_key_with_two_values() -> None:
    with pytest.raises(InputError, match="give it once"):
        build_query([criterion("PatientID", "A"), criterion("PatientID", "B")])


def test_build_query_accepts_one_key_given_twice_alike() -> None:
    keys = build_query([criterion("PatientID", "A"), criterion("PatientID", "A")])
    assert keys.matching == {"PatientID": "A"}


@pytest.mark.parametrize(
    ("keyword", "message"),
    [
        ("PatientsName", "not a DICOM keyword"),
        ("QueryRetrieveLevel", "set by pacsquery"),
        ("SpecificCharacterSet", "set by pacsquery"),
        ("SOPInstanceUID", "instance-level"),
        ("ReferencedImageSequence", "sequence"),
        ("PixelData", "binary data"),
        ("StudyComments", "cannot be matched"),
    ],
)
def test_build_query_refuses_keys_it_cannot_send(keyword: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_query([criterion(keyword, "x")])


def test_return_keys_are_checked() -> None:
    assert parse_return_keys(" StudyTime, BodyPartExamined ,") == [
        "StudyTime",
        "BodyPartExamined",
    ]
    with pytest.raises(InputError, match="not a DICOM keyword"):
        parse_return_keys("StudyTime,NoSuchKeyword")
    # A PACS may drop the association over a bulk data key (Orthanc does).
    with pytest.raises(InputError, match="PixelData .VR OB. is binary data"):
        build_query([], ["PixelData"])
    assert build_query([], ["BodyPartExamined"]).series["BodyPartExamined"] == ""


def test_parse_filter_reads_pairs_and_values_with_commas() -> None:
    criteria = parse_filter("BodyPartExamined=HEAD,StudyDescription=Head, neck")
    assert [(c.keyword, c.value) for c in criteria] == [
        ("BodyPartExamined", "HEAD"),
        ("StudyDescription", "Head, neck"),
    ]
    assert criteria[0].source == "--filter BodyPartExamined"
    assert parse_filter("") == []
    assert [c.value for c in parse_filter("StudyDescription=a=b")] == ["a=b"]


def test_parse_filter_refuses_a_piece_without_a_keyword() -> None:
    with pytest.raises(InputError, match="is not Keyword=value"):
        parse_filter("HEAD,StudyDescription=x")


def test_study_identifier_holds_study_keys_only_and_no_star() -> None:
    keys = build_query([criterion("PatientID", "4MR1"), criterion("Modality", "MR")])
    ds = study_identifier(keys)
    assert ds.QueryRetrieveLevel == "STUDY"
    assert "SpecificCharacterSet" in ds
    assert set(ds.dir()) == {
        "QueryRetrieveLevel",
        "SpecificCharacterSet",
        *STUDY_COLUMNS,
    }
    assert ds.PatientID == "4MR1"
    assert empty_keys(ds) == set(STUDY_COLUMNS) - {"PatientID"} | {
        "SpecificCharacterSet"
    }
    assert all("*" not in str(elem.value) for elem in ds)


def test_series_identifier_names_its_study_and_holds_series_keys_only() -> None:
    keys = build_query([criterion("Modality", "MR"), criterion("PatientID", "X")])
    ds = series_identifier(keys, "1.2.3")
    assert ds.QueryRetrieveLevel == "SERIES"
    assert ds.StudyInstanceUID == "1.2.3"
    assert ds.Modality == "MR"
    assert set(ds.dir()) == {
        "QueryRetrieveLevel",
        "SpecificCharacterSet",
        "StudyInstanceUID",
        *SERIES_COLUMNS,
    }
    assert empty_keys(ds) == set(SERIES_COLUMNS) - {"Modality"} | {
        "SpecificCharacterSet"
    }


def test_a_non_ascii_filter_makes_the_identifiers_utf8() -> None:
    keys = build_query([criterion("PatientName", "Wang^XiaoDong=王^小東")])
    assert keys.character_set == UTF8
    ds = study_identifier(keys)
    assert ds.SpecificCharacterSet == UTF8
    assert series_identifier(keys, "1.2").SpecificCharacterSet == UTF8


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("(0008,0060=MR", "(0008,0060"),
        ("0008,0060)=MR", "0008,0060)"),
        ("Modality=MR,(0008,0060=CT", "(0008,0060"),
        ("( 0008,0060=MR", "( 0008,0060"),
    ],
)
def test_parse_filter_refuses_a_tag_with_one_bracket(text: str, bad: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_filter(text)
    assert f"--filter: {bad} is not a tag" in str(caught.value)


def test_parse_filter_names_a_whole_tag_without_its_value() -> None:
    with pytest.raises(InputError, match=r"'\(0008,0060\)' is not Keyword=value"):
        parse_filter("(0008,0060)MR")
    assert [c.keyword for c in parse_filter("(0008,0060)=MR,0008,0050=A")] == [
        "Modality",
        "AccessionNumber",
    ]


@pytest.mark.parametrize("text", ["(0008,0060", "PatientAge,0008,0060)"])
def test_parse_return_keys_refuses_a_tag_with_one_bracket(text: str) -> None:
    with pytest.raises(InputError, match=r"--return-keys: \(?0008,0060\)? is not"):
        parse_return_keys(text)
