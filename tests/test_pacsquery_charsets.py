"""The character set of a query's filters: known terms, strict encoding."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_pacsquery import Run, make_query, saved_logging

from orthanc import free_port
from pacscommon.errors import InputError
from pacsquery.charsets import check_encodable, check_terms, defined_terms
from pacsquery.identifiers import Criterion, build_query


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the logging set-up that each run of ``main`` does."""
    with saved_logging():
        yield


@pytest.fixture
def query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Return a function that runs pacsquery's ``main`` on a port with options."""
    return make_query(tmp_path, capsys)


def name(value: str) -> Criterion:
    """Return a PatientName filter as ``--patient-name`` gives it."""
    return Criterion("PatientName", value, "--patient-name")


@pytest.mark.parametrize("charset", ["KLINGON", "ISO_IR 999", "ISO_IR 100\\KLINGON"])
def test_an_unknown_term_is_refused_even_with_ascii_filters(charset: str) -> None:
    with pytest.raises(InputError) as caught:
        build_query([name("DOE^JOHN")], charset=charset)

    message = str(caught.value)
    assert "KLINGON" in message or "ISO_IR 999" in message
    assert "PS3.3 C.12.1.1.2" in message and "--help" in message


def test_several_terms_need_iso_2022() -> None:
    with pytest.raises(InputError, match="ISO 2022"):
        check_terms("ISO_IR 192\\ISO_IR 100")
    assert check_terms("\\ISO 2022 IR 87") == ["", "ISO 2022 IR 87"]


@pytest.mark.parametrize(
    ("value", "charset", "missing"),
    [
        ("*Rüdiger*", "ISO_IR 6", "ü"),
        ("*Rüdiger*", "ISO 2022 IR 6", "ü"),
        ("Люкceмбypг", "ISO_IR 100", "Люкмбг"),
        ("Rüdiger^山田", "ISO 2022 IR 6\\ISO 2022 IR 87", "ü"),
    ],
)
def test_a_filter_the_set_cannot_hold_is_refused_naming_what(
    value: str, charset: str, missing: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InputError) as caught:
        build_query([name(value)], charset=charset)

    message = str(caught.value)
    assert repr(missing) in message and repr(charset) in message
    assert "default encoding" not in message and "replacement" not in message
    assert caplog.records == []


@pytest.mark.parametrize(
    ("value", "charset"),
    [
        ("Buc^Jérôme", "ISO_IR 100"),
        ("Yamada^Tarou=山田^太郎", "\\ISO 2022 IR 87"),
        ("Rüdiger^山田", "ISO 2022 IR 100\\ISO 2022 IR 87"),
        ("Wang^XiaoDong=王^小東", "GB18030"),
        ("Rüdiger", "ISO_IR 192"),
    ],
)
def test_a_filter_the_set_holds_is_accepted(value: str, charset: str) -> None:
    check_encodable(charset, [value])
    assert build_query([name(value)], charset=charset).character_set == charset


def test_the_help_lists_the_terms_that_are_accepted() -> None:
    terms = defined_terms()
    assert "ISO_IR 192" in terms and "ISO 2022 IR 87" in terms and "" not in terms
    for term in terms:
        check_terms(term)


@pytest.mark.parametrize(
    "args",
    [
        ["--character-set", "KLINGON"],
        ["--patient-name", "*Rüdiger*", "--character-set", "ISO_IR 6"],
    ],
)
def test_pacsquery_refuses_a_bad_character_set_in_one_line(
    query: Callable[..., Run], args: list[str]
) -> None:
    run = query(free_port(), *args)

    assert run.code == 2, run.stderr
    assert run.stderr.splitlines() == run.error_lines
    assert len(run.error_lines) == 1 and "--character-set" in run.error_lines[0]
