"""The programs the benchmarks time, installed as users install them.

The test environment (.venv) also holds numpy and pylibjpeg for the tests, and
pydicom imports them at start-up when they are there: about 0.12 CPU-s more
for every start of a program. The images install the programs without them
(pacsretrieve's ``preview`` extra aside), so the benchmarks time the programs
from an environment of their own, ``bench/work/venv``: the four distributions
of this checkout, editable (so it is always the code of the working tree), with
the image's pinned versions (docker/constraints.txt). It is made on first use
and again whenever a pyproject.toml or the constraints change.

pip compiles every module to bytecode when it installs the images. Here the
four packages are editable, and this machine's environment sets
PYTHONDONTWRITEBYTECODE, under which every start of a program would compile
them from source again (about 0.08 s); so the sources are compiled once, and
the benchmarks' children run without that variable.
"""

import compileall
import hashlib
import os
import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
VENV = TOP / "bench" / "work" / "venv"
BIN = VENV / "bin"
STAMP = VENV / "pacs-inputs.sha256"
DISTRIBUTIONS = ("pacscommon", "pacsquery", "pacsretrieve", "pacslistener")
CONSTRAINTS = TOP / "docker" / "constraints.txt"


def _inputs_digest() -> str:
    """Return a digest of what the environment is made from."""
    digest = hashlib.sha256()
    for path in [CONSTRAINTS, *(TOP / d / "pyproject.toml" for d in DISTRIBUTIONS)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure() -> Path:
    """Make the programs' environment if it is missing or stale; return its bin."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in DISTRIBUTIONS:
        compileall.compile_dir(TOP / name / "src", quiet=1)
    wanted = _inputs_digest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return BIN
    print(f"programs: installing the four programs in {VENV}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    editable = [arg for d in DISTRIBUTIONS for arg in ("-e", str(TOP / d))]
    subprocess.run(
        [str(BIN / "pip"), "install", "-q", "--disable-pip-version-check",
         "-c", str(CONSTRAINTS), *editable],
        check=True,
    )  # fmt: skip
    STAMP.write_text(wanted)
    return BIN


def program(name: str) -> str:
    """Return the path of one program's console script, installing if need be."""
    return str(ensure() / name)
