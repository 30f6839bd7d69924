"""What pacslistener's --max-pdu costs in memory and time, per kind of sender.

DCMTK (and so Orthanc) never sends a PDU larger than 128 KiB, whatever the
receiver allows; pynetdicom sends PDUs as large as the receiver allows, and
with a limit of 0 (unlimited) it sends each data set as one PDU, which the
receiver holds in memory whole. This sends one large instance (8192x8192
16-bit, 128 MiB) with each sender to pacslistener at each --max-pdu, three
interleaved runs, and reports the sender's wall time and the listener's peak
resident memory.

    python bench/pdu_memory.py [--runs N]
"""

import argparse
import statistics
import sys

import data
import receive
from pynet_sender import command as pynetdicom_sender
from targets import Target, listener, storescu

BIG = data.DataSet("big", 1, 8192, 1)
SECTION_TITLE = "Receive: --max-pdu and memory (one 128 MiB instance)"


def targets() -> list[Target]:
    """Return each sender against pacslistener at each --max-pdu."""
    found = []
    for pdu in ("16384", "1048576", "0"):
        for sender, name in ((storescu, "storescu"), (pynetdicom_sender, "pynet")):
            found.append(
                Target(f"{name}-{pdu}", f"{name} -> pacslistener --max-pdu {pdu}",
                       sender, listener("--max-pdu", pdu), stored_glob="**/*.dcm")
            )  # fmt: skip
    return found


def table(results: dict[str, list[receive.Measurement]], labels: dict) -> str:
    """Return the Markdown table of the runs."""
    lines = ["| sender -> receiver | median s | listener peak RSS MB | runs: s "
             "(others' CPU-s) |", "|---|---:|---:|---|"]  # fmt: skip
    for name, ms in results.items():
        seconds = statistics.median(m.seconds for m in ms)
        peak = statistics.median(m.peak_kib or 0 for m in ms) / 1024
        runs = ", ".join(f"{m.seconds:.2f} ({m.other_cpu:.1f})" for m in ms)
        lines.append(f"| {labels[name]} | {seconds:.2f} | {peak:.0f} | {runs} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args(argv)
    (data.WORK / "logs").mkdir(parents=True, exist_ok=True)
    chosen = targets()
    load_before = receive.load_average()
    results = receive.run_set(BIG, chosen, max(1, options.runs))
    command = " ".join(["python", "bench/pdu_memory.py", *argv])
    text = "\n\n".join([receive.header(command, options.runs, load_before),
                        table(results, {t.name: t.label for t in chosen})])  # fmt: skip
    print(text)
    receive.write_results(text, SECTION_TITLE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
