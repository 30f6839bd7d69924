"""Short, bounded runs of the coverage-guided fuzzers under tests/fuzz/.

Each harness runs in its own process for ``FUZZ_RUNS`` inputs (default 2000)
from a seed corpus built here from real files. For a longer run on demand:
``FUZZ_RUNS=0 python tests/fuzz/fuzz_metadata.py -max_total_time=600 DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from pacscommon.results import encode_rows

HERE = Path(__file__).parent / "fuzz"
RUNS = os.environ.get("FUZZ_RUNS", "2000")


def seed_results(folder: Path) -> None:
    """Seed with a success.txt and a flat list, as the two writers make them."""
    rows = [
        {"PatientID": "P1", "StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4",
         "NumberOfSeriesRelatedInstances": "3"},
        {"PatientID": "P2", "StudyInstanceUID": "1.2.5", "SeriesInstanceUID": "1.2.5.6",
         "NumberOfSeriesRelatedInstances": ""},
    ]  # fmt: skip
    document = {"status": "success", "complete": True, "data": encode_rows(rows)}
    (folder / "success.txt").write_text(json.dumps(document))
    (folder / "flat.json").write_text(json.dumps(rows))


def seed_metadata(folder: Path) -> None:
    """Seed with the start of real data sets, after their preamble."""
    for name in ("CT_small.dcm", "MR_small.dcm", "rtdose_1frame.dcm"):
        path = get_testdata_file(name, download=False)
        assert path is not None
        (folder / name).write_bytes(Path(path).read_bytes()[132:4096])


def seed_layout(folder: Path) -> None:
    """Seed with a few bytes; the harness builds values from them."""
    (folder / "plain").write_bytes(b"\x01" * 64)


SEEDS = {"layout": seed_layout, "metadata": seed_metadata, "results": seed_results}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_fuzzer_finds_no_crash(name: str, tmp_path: Path) -> None:
    seeds, work = tmp_path / "seeds", tmp_path / "corpus"
    seeds.mkdir()
    work.mkdir()
    SEEDS[name](seeds)
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / f"fuzz_{name}.py"),
            f"-runs={RUNS}",
            "-max_len=4096",
            f"-artifact_prefix={tmp_path}/",
            str(work),
            str(seeds),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DONE" in done.stderr
    assert not list(tmp_path.glob("crash-*"))
