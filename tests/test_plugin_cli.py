"""The plugins' console scripts on the mistakes a newcomer makes first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from listener import program


@pytest.mark.parametrize("name", ["pacsquery", "pacsretrieve"])
def test_missing_input_directory_is_an_input_error(name: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [program(name), str(tmp_path / "nosuch"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: input directory")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["pacsquery", "pacsretrieve", "pacslistener"])
def test_version_is_printed_once(name: str) -> None:
    done = subprocess.run(
        [program(name), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"{name} 0.1.0"


def test_a_bad_option_value_is_reported_once(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    done = subprocess.run(
        [
            program("pacsquery"),
            "--pacs-port",
            "abc",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    errors = [ln for ln in done.stderr.splitlines() if "error:" in ln]
    assert errors == [
        "pacsquery: error: argument --serverPort/--pacs-port: invalid int value: 'abc'"
    ]


def test_an_unknown_option_is_named(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    done = subprocess.run(
        [
            program("pacsquery"),
            "--patiend-id",
            "X",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("usage: pacsquery [options]")
    assert "unrecognized arguments: --patiend-id" in lines[1]
