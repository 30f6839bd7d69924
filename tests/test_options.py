"""Options from the environment: a bad value names its variable."""

import argparse
import os
import subprocess

import pytest

from listener import program
from pacscommon.options import environment_args


def parser() -> argparse.ArgumentParser:
    """Return a parser with a whole number, a number, a text and a switch."""
    made = argparse.ArgumentParser(prog="tool")
    made.add_argument("--serverPort", "--pacs-port", dest="pacs_port", type=int)
    made.add_argument("--grace", dest="grace", type=float)
    made.add_argument("--aet", dest="aet", type=str)
    made.add_argument("--dry-run", dest="dry_run", action="store_true")
    return made


@pytest.mark.parametrize(
    ("variable", "value", "kind"),
    [
        ("TOOL_PACS_PORT", "abc", "a whole number"),
        ("TOOL_PACS_PORT", "", "a whole number"),
        ("TOOL_GRACE", "soon", "a number"),
    ],
)
def test_a_typed_value_that_does_not_parse_names_its_variable(
    capsys: pytest.CaptureFixture[str], variable: str, value: str, kind: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        environment_args(parser(), "TOOL", {variable: value})

    assert stopped.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert (
        error
        == f"tool: error: {variable}={value!r} is not {kind}; correct it or unset it"
    )
    assert "--pacs-port" not in error and "--serverPort" not in error


def test_values_that_parse_go_on_the_command_line() -> None:
    environ = {"TOOL_PACS_PORT": "104", "TOOL_GRACE": "2.5", "TOOL_AET": "ME"}
    assert environment_args(parser(), "TOOL", environ) == [
        "--pacs-port=104",
        "--grace=2.5",
        "--aet=ME",
    ]


def test_pacsquery_names_the_variable_of_a_bad_port(tmp_path: os.PathLike[str]) -> None:
    env = {**os.environ, "PACSQUERY_PACS_PORT": "abc"}
    done = subprocess.run(
        [program("pacsquery"), str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )

    assert done.returncode == 2
    assert "PACSQUERY_PACS_PORT='abc'" in done.stderr.splitlines()[-1]
    assert "--serverPort" not in done.stderr.splitlines()[-1]
