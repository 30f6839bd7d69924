"""pacslistener's command line: housekeeping runs and start-up failures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from listener import program
from orthanc import free_port
from pacscommon.index import INDEX_DIR


def listener(*args: str) -> subprocess.CompletedProcess[str]:
    """Run pacslistener with ``args`` until it exits."""
    return subprocess.run(
        [program("pacslistener"), "--bind", "127.0.0.1", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """Return the lines of stderr a run wrote, all of which must be errors."""
    lines = done.stderr.splitlines()
    assert all(line.startswith("error:") for line in lines), done.stderr
    return lines


def stored_series(data: Path, uid: str) -> Path:
    """Put a series of one instance and its index entry in ``data``."""
    folder = data / "P-NAME-19700101" / "STUDY-ACC-20200101" / f"00001-S-{uid}"
    folder.mkdir(parents=True)
    (folder / "0001-1.2.3.dcm").write_bytes(b"\0" * 132)
    (data / INDEX_DIR).mkdir(exist_ok=True)
    entry = {
        "SeriesInstanceUID": uid,
        "StudyInstanceUID": "1.2",
        "path": str(folder.relative_to(data)),
    }
    (data / INDEX_DIR / f"{uid}.json").write_text(json.dumps(entry))
    return folder


def test_prune_days_zero_removes_every_series_and_exits(tmp_path: Path) -> None:
    folders = [stored_series(tmp_path, uid) for uid in ("1.2.3", "1.2.4")]
    time.sleep(0.05)

    done = listener("--data-dir", str(tmp_path), "--prune-days", "0")

    assert done.returncode == 0, done.stderr
    assert not any(folder.exists() for folder in folders)
    assert not list((tmp_path / INDEX_DIR).iterdir())


def test_prune_days_zero_from_the_environment_prunes(tmp_path: Path) -> None:
    folder = stored_series(tmp_path, "1.2.3")
    time.sleep(0.05)
    env = {**os.environ, "PACSLISTENER_PRUNE_DAYS": "0"}

    done = subprocess.run(
        [program("pacslistener"), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )

    assert done.returncode == 0, done.stderr
    assert not folder.exists()


@pytest.mark.parametrize("days", ["-1", "-0.5", "nan"])
def test_negative_prune_days_is_exit_2(tmp_path: Path, days: str) -> None:
    folder = stored_series(tmp_path, "1.2.3")

    done = listener("--data-dir", str(tmp_path), f"--prune-days={days}")

    assert done.returncode == 2
    lines = error_lines(done)
    assert len(lines) == 1 and "--prune-days" in lines[0]
    assert folder.exists()


@pytest.mark.parametrize("extra", [["--usage"], ["--prune-days", "1"]])
def test_housekeeping_of_a_missing_data_dir_is_exit_2(
    tmp_path: Path, extra: list[str]
) -> None:
    missing = tmp_path / "nowhere"

    done = listener("--data-dir", str(missing), *extra)

    assert done.returncode == 2
    assert done.stdout == ""
    lines = error_lines(done)
    assert len(lines) == 1 and str(missing) in lines[0]
    assert not missing.exists()


def test_a_taken_port_creates_nothing_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = listener("--port", str(port), "--data-dir", str(data))

    assert done.returncode == 1
    lines = error_lines(done)
    assert len(lines) == 1 and str(port) in lines[0]
    assert not data.exists()


@pytest.mark.parametrize("address", ["127.0.0.256", "1:2:3:4:5:6:7:8:9"])
def test_an_address_that_is_none_is_exit_2_naming_it(
    tmp_path: Path, address: str
) -> None:
    done = listener(
        "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
        "--bind", address,
    )  # fmt: skip

    assert done.returncode == 2
    lines = error_lines(done)
    assert len(lines) == 1 and address in lines[0]
    assert "port" not in lines[0]
    assert not (tmp_path / "d").exists()
