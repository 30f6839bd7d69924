"""Demo of the main job: a seeded Orthanc, the listener, a query and a pull.

Everything runs on 127.0.0.1 on free ports and stops at the end; the query's
and the pull's output stay in the folder given (default ``demo-out``).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from corpus import build_corpus  # noqa: E402
from listener import Listener, program  # noqa: E402
from orthanc import OrthancServer, free_port  # noqa: E402


def step(title: str) -> None:
    """Announce a step of the demo."""
    sys.stderr.write(f"\n=== {title}\n")
    sys.stderr.flush()


def run(*command: str) -> None:
    """Run one of the programs, as a user would, and stop the demo if it fails."""
    sys.stderr.write("$ " + " ".join(command) + "\n")
    sys.stderr.flush()
    subprocess.run(command, check=True)


def main(out: Path) -> None:
    """Seed an Orthanc, start the listener, query everything, pull it all."""
    out.mkdir(parents=True, exist_ok=True)
    # scripts/demo replaces a folder that holds this mark, and no other.
    (out / ".pacs-demo").touch()
    listener_port = free_port()
    modalities = {"CHRISLOCAL": ("CHRISLOCAL", "127.0.0.1", listener_port)}
    step("Orthanc with real sample files (pydicom, pydicom-data)")
    corpus = build_corpus(out / "samples")
    with OrthancServer(out / "orthanc", modalities=modalities) as orthanc:
        for item in corpus:
            orthanc.upload(item.path)
        sys.stderr.write(f"Orthanc holds {orthanc.instance_count()} instances\n")
        step("pacslistener, the storage SCP, writing into data/")
        with Listener(out / "data", listener_port):
            pacs = ["--pacs-port", str(orthanc.dicom_port)]
            step("pacsquery: every series the PACS holds")
            (out / "query-in").mkdir(exist_ok=True)
            run(program("pacsquery"), *pacs, str(out / "query-in"),
                str(out / "query-out"))  # fmt: skip
            step("pacsretrieve: pull every row")
            run(program("pacsretrieve"), *pacs, "--data-location",
                str(out / "data"), str(out / "query-out"),
                str(out / "retrieve-out"))  # fmt: skip
    step(f"what arrived in {out / 'retrieve-out'}")
    for path in sorted((out / "retrieve-out").rglob("*")):
        depth = len(path.relative_to(out / "retrieve-out").parts) - 1
        sys.stdout.write(
            "    " * depth + path.name + ("/" if path.is_dir() else "") + "\n"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out").resolve())
