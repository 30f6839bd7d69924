"""The plugins' console scripts on the mistakes a newcomer makes first."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from listener import program
from orthanc import free_port


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


def _as_nobody() -> list[str]:
    """Return the command prefix that runs a program as an unprivileged user."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """Yield a scratch folder that an unprivileged user can reach too."""
    # pytest's own tmp_path sits under a folder only its owner may enter.
    folder = Path(tempfile.mkdtemp(prefix="pacs-cli-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        (folder / "ro").chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize("name", ["pacsquery", "pacsretrieve"])
@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_an_output_directory_that_cannot_be_written_is_an_input_error(
    name: str, where: str, open_tmp: Path
) -> None:
    tmp_path = open_tmp
    (tmp_path / "in").mkdir()
    (tmp_path / "afile").write_text("")
    (tmp_path / "ro").mkdir(mode=0o555)
    out = tmp_path / "afile" / "out" if where == "under-a-file" else tmp_path / "ro"
    prefix = _as_nobody() if where == "read-only" else []
    # A PACS port nobody listens on: the check must come before any connection.
    done = subprocess.run(
        [*prefix, program(name), "--pacs-port", str(free_port()),
         str(tmp_path / "in"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: output directory {out}")
    assert "not a directory" in lines[0] or "not writable" in lines[0]
    assert list((tmp_path / "ro").iterdir()) == []
