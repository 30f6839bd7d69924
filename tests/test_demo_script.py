"""scripts/demo replaces only its own output folder."""

import subprocess
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo"


def run_demo(folder: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEMO), str(folder)], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_a_folder_with_other_files_is_refused_and_kept(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    done = run_demo(Path("mine"), cwd=tmp_path)  # relative to the caller
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: {mine} holds files that an earlier demo did not write; give a "
        "new or empty folder"
    ]
    assert (mine / "thesis.txt").read_text() == "years of work"


def test_a_file_is_refused_and_kept(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep")
    done = run_demo(notes, cwd=tmp_path)
    assert done.returncode == 2 and "error:" in done.stderr
    assert notes.read_text() == "keep"
