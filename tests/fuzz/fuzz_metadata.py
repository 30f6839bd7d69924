"""Fuzz the listener's metadata reader on arbitrary received bytes.

Whatever a sender streams, reading the layout attributes either works or raises
``InstanceRejected`` (answered with a failure status); nothing else escapes.
Run: ``python tests/fuzz/fuzz_metadata.py [libFuzzer options]``.
"""

import sys
import tempfile
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from pacscommon.storage import InstanceRejected, read_layout_attributes

PREFIX = b"\x00" * 128 + b"DICM"
WORK = Path(tempfile.mkdtemp(prefix="fuzz-metadata-"))


def test_one_input(data: bytes) -> None:
    """Read the layout attributes of one fuzzed Part-10 file."""
    path = WORK / "received.dcm"
    path.write_bytes(PREFIX + data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            attrs = read_layout_attributes(path)
        except InstanceRejected:
            return
    assert all(v is None or isinstance(v, str) for v in attrs.values())


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
