"""Fuzz the results-file reader: bad files are input errors, never crashes.

Run: ``python tests/fuzz/fuzz_results.py [libFuzzer options]``.
"""

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from pacscommon.errors import InputError
    from pacscommon.results import load_rows
    from pacsretrieve.selection import load_requests, select

WORK = Path(tempfile.mkdtemp(prefix="fuzz-results-"))


def test_one_input(data: bytes) -> None:
    """Read one fuzzed results file."""
    path = WORK / "success.txt"
    path.write_bytes(data)
    try:
        rows = load_rows(path)
    except InputError:
        return
    for row in rows:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in row.items())
    try:
        requests = load_requests(path)
        select(requests, "0,1-2")
    except InputError:
        return


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
