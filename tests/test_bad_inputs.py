"""Bad inputs, each run through the program it targets (cases: tests/badinputs.py).

Data sets go to one pacslistener over a real association each; the command
lines (malformed results files, bad option values) run as real processes, a
few at a time, each bounded in time: a timeout is a hang, a traceback a crash,
and both fail the case.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from badinputs import (
    REFUSED,
    SC_STORAGE,
    STORED,
    CliCase,
    StoreCase,
    lenient,
    option_cases,
    results_cases,
    store_cases,
)
from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config
from reliability import tree_files

from listener import Listener, program
from orthanc import free_port
from pacscommon.network import keep_responses_for_requests

CLI_TIMEOUT = 30.0  # seconds; a bad value must never make a program wait
# A listener that accepts a bad value serves until stopped: a shorter bound.
SERVE_TIMEOUT = 6.0


def _catalogue() -> tuple[dict[str, StoreCase], dict[str, CliCase]]:
    """Build every case once in a scratch folder, for the names and the marks.

    The tests build their own; what a case expects does not depend on where it
    is written or on the (free) ports it names.
    """
    with tempfile.TemporaryDirectory(prefix="badinputs-") as scratch:
        root = Path(scratch)
        stores = {c.name: c for c in store_cases(root / "d")}
        clis = results_cases(root / "r", 1) + option_cases(root / "o", 1, 1)
    return stores, {c.name: c for c in clis}


STORE_CASES, CLI_CASES = _catalogue()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StoreCase]:
    return {c.name: c for c in store_cases(tmp_path_factory.mktemp("datasets"))}


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    data = tmp_path_factory.mktemp("bad-listener") / "data"
    with Listener(data, free_port()) as running:
        yield running


def send(listener: Listener, case: StoreCase) -> int | None:
    """Send one case; return the C-STORE status (None: no answer)."""
    if case.sender == "storescu":
        done = subprocess.run(
            ["/usr/bin/storescu", "-f", "-aec", listener.aet, "127.0.0.1",
             str(listener.port), str(case.path)],
            capture_output=True, text=True, timeout=CLI_TIMEOUT,
        )  # fmt: skip
        return 0 if done.returncode == 0 else None
    with lenient():
        syntax = read_file_meta_info(case.path).TransferSyntaxUID
        ae = AE(ae_title="BADINPUT")
        ae.add_requested_context(SC_STORAGE, syntax)
        assoc = ae.associate("127.0.0.1", listener.port, ae_title=listener.aet)
        if assoc.is_established:
            keep_responses_for_requests(assoc)
        assert assoc.is_established
        saved = _config.STORE_SEND_CHUNKED_DATASET
        _config.STORE_SEND_CHUNKED_DATASET = True  # the bytes as they stand
        try:
            status = assoc.send_c_store(case.path)
        finally:
            _config.STORE_SEND_CHUNKED_DATASET = saved
            assoc.release()
    return int(status.Status) if "Status" in status else None


def after_meta(path: Path) -> bytes:
    """Return a Part-10 file's bytes after its file meta."""
    raw = path.read_bytes()
    return raw[144 + int.from_bytes(raw[140:144], "little") :]


def _store_params() -> list[Any]:
    return [
        pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=c.bug)]
                     if c.bug else [], id=name)
        for name, c in STORE_CASES.items()
    ]  # fmt: skip


@pytest.mark.parametrize("name", _store_params())
def test_data_set_to_listener(
    name: str, stores: dict[str, StoreCase], listener: Listener, record_property: Any
) -> None:
    case = stores[name]
    before = set(tree_files(listener.data_dir))
    log_before = len(listener.log_text())
    status = send(listener, case)
    new = sorted(set(tree_files(listener.data_dir)) - before)
    assert not any((listener.data_dir / ".incoming").iterdir())
    log = listener.log_text()[log_before:]
    assert "Traceback" not in log
    if case.expect == REFUSED:
        assert status is not None and status & 0xF000 in (0xA000, 0xC000), status
        assert new == []
        assert "refused" in log or "not stored" in log
        line = next(
            ln for ln in log.splitlines() if "refused" in ln or "not stored" in ln
        )
        record_property("observed", f"{case.note}: refused, status 0x{status:04X}; "
                        f"log: {line.split(': ', 1)[-1][:120]}")  # fmt: skip
        return
    assert case.expect == STORED
    assert status == 0, f"status {status}; listener log: {log[-800:]}"
    assert len(new) == 1
    (path,) = new
    assert listener.data_dir.resolve() in path.resolve().parents
    parts = path.relative_to(listener.data_dir).parts
    assert len(parts) == 4 and all(p not in ("", ".", "..") for p in parts)
    assert all(len(p.encode()) <= 255 for p in parts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        stored = dcmread(path)
        uid = str(stored.SOPInstanceUID).rstrip("\0 ")
    assert uid == case.SOPInstanceUID
    if case.sender == "pynetdicom":
        assert after_meta(path) == after_meta(case.path)
    record_property("observed", f"{case.note}: stored, parses, SOPInstanceUID "
                    f"right{', bytes as sent' if case.sender == 'pynetdicom' else ''}"
                    f"; path {'/'.join(p[:24] for p in parts)}")  # fmt: skip


@dataclass(frozen=True)
class CliRun:
    """How one command line ended."""

    code: int | None  # None: killed after CLI_TIMEOUT (a hang)
    stderr: str


def run_cli(case: CliCase) -> CliRun:
    """Run one command line, bounded in time."""
    try:
        done = subprocess.run(
            [program(case.program), *case.args],
            capture_output=True, text=True,
            timeout=SERVE_TIMEOUT if case.program == "pacslistener" else CLI_TIMEOUT,
            env={**os.environ, **case.env}, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else ""
        return CliRun(None, err or "")
    return CliRun(done.returncode, done.stderr)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliRun]:
    """Run every command line, four at a time, in directories of their own."""
    root = tmp_path_factory.mktemp("cli")
    pacs_port, listen_port = free_port(), free_port()
    cases = results_cases(root / "results", pacs_port) + option_cases(
        root / "options", pacs_port, listen_port
    )
    with ThreadPoolExecutor(4) as pool:
        return dict(zip([c.name for c in cases], pool.map(run_cli, cases), strict=True))


def _case_params() -> list[Any]:
    params = []
    for name, case in CLI_CASES.items():
        marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
        params.append(pytest.param(name, marks=marks, id=f"{case.program}-{name}"))
    return params


@pytest.mark.parametrize("name", _case_params())
def test_command_line(
    name: str, cli_runs: dict[str, CliRun], record_property: Any
) -> None:
    case, run = CLI_CASES[name], cli_runs[name]
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    usage = [ln for ln in run.stderr.splitlines() if ": error: " in ln]
    shown = (errors or usage or [run.stderr.strip()[-160:]])[0]
    record_property("observed", f"exit {run.code}; {shown[:200]}")
    assert run.code is not None, "no exit in time (a hang, or serving)"
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code == case.expect, run.stderr
    if case.note == "argparse":
        assert len(usage) == 1, run.stderr
    else:
        assert len(errors) == 1, run.stderr
