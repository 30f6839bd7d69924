"""Faults in the middle of a pull, survived: real processes killed or starved.

One Orthanc of this module's own holds a series of 300 clones of a real CT
slice, so that a C-MOVE to the listener takes a couple of seconds (about 8 ms
an instance with TCP_NODELAY). Each test breaks one thing while that move runs,
then checks the same four things:

- pacsretrieve exits 1 with one ``error:`` line and says what happened;
- the output directory holds no partial series that report.json leaves
  unmarked;
- the data volume holds whole files only (each parses, its PixelData has the
  length its Rows, Columns and bits say) and ``.incoming`` is empty;
- once the fault is gone, a rerun brings every instance (exit 0).

Orthanc's ``DicomScuTimeout`` is 2 s here, so that a slow destination costs
seconds, not the default 10.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from pynetdicom import _config, evt
from reliability import (
    AbortingRelay,
    Background,
    ClonedSeries,
    Run,
    check_output_marked,
    check_volume,
    check_whole_files,
    clone_series,
    retrieve_command,
    wait_until,
    write_results,
)

from listener import Listener
from orthanc import OrthancServer, free_port
from pacscommon.handlers import StorageHandlers
from pacscommon.incoming import attach
from pacscommon.index import count_instances, read_entry
from pacscommon.network import NODELAY_HANDLERS
from pacscommon.server import ServerConfig, build_ae
from pacscommon.storage import StorageEngine
from tmpfs import mounted_tmpfs

SLICES = 300
DEST = "FAULTS"  # the AE title Orthanc moves to in this module
SCU_TIMEOUT = 2  # Orthanc's DicomScuTimeout, seconds


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> ClonedSeries:
    return clone_series(tmp_path_factory.mktemp("clones"), SLICES)


@pytest.fixture(scope="module")
def pacs(
    tmp_path_factory: pytest.TempPathFactory, series: ClonedSeries
) -> Iterator[OrthancServer]:
    """An Orthanc of this module's own, holding the 300-slice series."""
    with OrthancServer(
        tmp_path_factory.mktemp("orthanc"), scu_timeout=SCU_TIMEOUT
    ) as server:
        for path in series.files:
            assert server.upload(path).get("Status") == "Success"
        assert server.instance_count() == SLICES
        server.add_modality("CHRISLOCAL", "CHRISLOCAL", free_port())
        yield server


def point_at(pacs: OrthancServer, port: int) -> None:
    """Make Orthanc send the DEST AE's instances to ``port``."""
    pacs.add_modality(DEST, DEST, port)


def start_pull(
    pacs: OrthancServer, series: ClonedSeries, data: Path, tmp: Path, name: str,
    *args: str,
) -> Background:  # fmt: skip
    """Start pacsretrieve on the series; it moves to DEST."""
    inputdir, outputdir = tmp / "in", tmp / name
    write_results(inputdir, [series.row()])
    command = retrieve_command(pacs.dicom_port, data, "--move-destination", DEST,
                               "--wait-timeout", "5", *args, str(inputdir),
                               str(outputdir))  # fmt: skip
    return Background(command, outputdir)


def arrived(data: Path, series: ClonedSeries) -> int:
    """Return how many instances of the series the volume holds now."""
    entry = read_entry(data, series.SeriesInstanceUID)
    return 0 if entry is None else count_instances(data / entry.path)


def check_failed_run(run: Run, data: Path, settled: bool = True) -> dict[str, Any]:
    """Assert the four things a failed pull must show; return its one series.

    ``settled`` False: a destination still busy storing may hold a file in
    ``.incoming``; only the tree is checked.
    """
    assert run.code == 1, run.stderr
    assert not run.crashed, run.stderr
    assert len(run.errors) == 1, run.stderr
    report = check_output_marked(run)
    assert report["status"] == "partial" and report["complete"] is False
    (item,) = report["series"]
    assert item["complete"] is False
    if settled:
        check_volume(data)
    else:
        check_whole_files(data)
    return dict(item)


def check_rerun(
    pacs: OrthancServer, series: ClonedSeries, data: Path, tmp: Path
) -> Run:
    """Rerun the pull with nothing broken: every instance, exit 0."""
    run = start_pull(pacs, series, data, tmp, "rerun").finish()
    assert run.code == 0, run.stderr
    report = check_output_marked(run)
    (item,) = report["series"]
    assert item["complete"] is True and item["arrived"] == SLICES
    uids = check_volume(data)
    assert len(uids) == SLICES
    return run


def describe(item: dict[str, Any], run: Run, extra: str = "") -> str:
    """Return the one-line observed outcome of a failed pull."""
    pacs = item["pacs"] or {}
    error = run.errors[0][len("error: ") :]
    return (
        f"exit {run.code} after {run.seconds:.1f} s; {item['arrived']} of "
        f"{SLICES} on disk; PACS status {pacs.get('status')} completed "
        f"{pacs.get('completed')} failed {pacs.get('failed')}; report complete="
        f"{item['complete']}, series copied out: {item['path'] is not None}; "
        f"{extra}error: {error[:160]}"
    )


def test_orthanc_killed_mid_move(
    pacs: OrthancServer, series: ClonedSeries, tmp_path: Path, record_property: Any
) -> None:
    data = tmp_path / "data"
    with Listener(data, free_port(), DEST) as running:
        point_at(pacs, running.port)
        pull = start_pull(pacs, series, data, tmp_path, "out", "--retries", "1")
        wait_until(lambda: arrived(data, series) >= 30, 60, "30 instances")
        process = pacs._process  # the Orthanc process, to kill on purpose
        assert process is not None
        process.kill()
        process.wait()
        at_kill = arrived(data, series)
        run = pull.finish()
        item = check_failed_run(run, data)
        assert at_kill < SLICES and item["arrived"] < SLICES
        assert "cannot connect" in run.errors[0] or "aborted" in run.errors[0]
        pacs.stop()
        pacs.start()
        point_at(pacs, running.port)
        rerun = check_rerun(pacs, series, data, tmp_path)
    record_property("observed", describe(item, run, f"killed at {at_kill}; ")
                    + f" | rerun: exit 0, {SLICES} of {SLICES} in "
                    f"{rerun.seconds:.1f} s")  # fmt: skip


def test_listener_sigkilled_mid_series_and_restarted(
    pacs: OrthancServer, series: ClonedSeries, tmp_path: Path, record_property: Any
) -> None:
    data, port = tmp_path / "data", free_port()
    point_at(pacs, port)
    running = Listener(data, port, DEST).start()
    pull = start_pull(pacs, series, data, tmp_path, "out", "--retries", "0")
    wait_until(lambda: arrived(data, series) >= 30, 60, "30 instances")
    running.kill()
    at_kill = arrived(data, series)
    left = len(list((data / ".incoming").iterdir()))
    run = pull.finish()
    assert at_kill < SLICES
    with Listener(data, port, DEST) as restarted:
        # The restart sweeps what the killed listener left half-written.
        assert not any((data / ".incoming").iterdir())
        item = check_failed_run(run, data)
        assert item["arrived"] < SLICES
        swept = "removed" in restarted.log_text()
        rerun = check_rerun(pacs, series, data, tmp_path)
    record_property("observed", describe(item, run, f"killed at {at_kill} "
                    f"({left} file(s) in .incoming, swept on restart: {swept}); ")
                    + f" | rerun after restart: exit 0, {SLICES} of {SLICES} in "
                    f"{rerun.seconds:.1f} s")  # fmt: skip


class SlowScp:
    """The project's storage engine behind a C-STORE handler that dawdles.

    From the ``slow_from``-th instance on, each C-STORE waits ``delay`` seconds
    before it is stored and answered; ``delay`` 0 makes it fast again.
    """

    def __init__(self, data: Path, slow_from: int, delay: float) -> None:
        self.data, self.slow_from, self.delay = data, slow_from, delay
        self.port = free_port()
        self.seen = 0
        self._lock = threading.Lock()
        self._saved = (_config.UNRESTRICTED_STORAGE_SERVICE,
                       _config.STORE_RECV_CHUNKED_DATASET)  # fmt: skip
        engine = StorageEngine(data)
        engine.prepare()
        self.handlers = StorageHandlers(engine)
        ae = build_ae(ServerConfig(aet=DEST, port=self.port, bind="127.0.0.1"))
        attach(ae, engine.incoming_folder())
        bindings = [(e, self.on_store if e is evt.EVT_C_STORE else h)
                    for e, h in self.handlers.bindings()]  # fmt: skip
        server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=cast(Any, bindings + list(NODELAY_HANDLERS)),
        )
        assert server is not None
        self.server = server

    def on_store(self, event: evt.Event) -> int:
        with self._lock:
            self.seen += 1
            slow = self.delay and self.seen >= self.slow_from
        if slow:
            time.sleep(self.delay)  # the fault under test: a slow destination
        return self.handlers.on_store(event)

    def stop(self) -> None:
        self.server.shutdown()
        (_config.UNRESTRICTED_STORAGE_SERVICE,
         _config.STORE_RECV_CHUNKED_DATASET) = self._saved  # fmt: skip


def test_slow_destination_is_cut_off_by_orthancs_scu_timeout(
    pacs: OrthancServer, series: ClonedSeries, tmp_path: Path, record_property: Any
) -> None:
    """A C-STORE answered after 3 s: Orthanc's 2 s DicomScuTimeout ends the move.

    pacsretrieve's own --dimse-timeout (60 s) is not what ends it: the failure
    is reported within seconds, as Orthanc's timeout says.
    """
    data = tmp_path / "data"
    scp = SlowScp(data, slow_from=20, delay=SCU_TIMEOUT + 1.0)
    try:
        point_at(pacs, scp.port)
        run = start_pull(pacs, series, data, tmp_path, "out", "--retries", "0",
                         "--dimse-timeout", "60").finish()  # fmt: skip
        item = check_failed_run(run, data)
        assert run.seconds < 30
        assert item["pacs"] is not None and item["pacs"]["status"] != "0x0000"
        assert item["arrived"] < SLICES
        scp.delay = 0
        rerun = check_rerun(pacs, series, data, tmp_path)
    finally:
        scp.stop()
    record_property("observed", describe(item, run, "C-STORE #20 answered after "
                    f"{SCU_TIMEOUT + 1} s, Orthanc DicomScuTimeout {SCU_TIMEOUT} s; ")
                    + f" | rerun, fast again: exit 0, {SLICES} of {SLICES} in "
                    f"{rerun.seconds:.1f} s")  # fmt: skip


def test_slow_move_is_cut_off_by_our_dimse_timeout(
    pacs: OrthancServer, series: ClonedSeries, tmp_path: Path, record_property: Any
) -> None:
    """Each C-STORE answered after 1 s (Orthanc waits: its timeout is 2 s).

    The gap between two C-MOVE responses is then 1 s, longer than
    ``--dimse-timeout 0.4``: pacsretrieve gives up on its own timeout.
    """
    data = tmp_path / "data"
    scp = SlowScp(data, slow_from=10, delay=1.0)
    try:
        point_at(pacs, scp.port)
        run = start_pull(pacs, series, data, tmp_path, "out", "--retries", "0",
                         "--dimse-timeout", "0.4").finish()  # fmt: skip
        # Orthanc may still be storing: the destination is slow, not gone.
        item = check_failed_run(run, data, settled=False)
        assert run.seconds < 30
        assert "--dimse-timeout" in run.errors[0] or "aborted" in run.errors[0]
        scp.delay = 0
        wait_until(lambda: not any((data / ".incoming").iterdir()), 30,
                   "the slow destination finishing its last C-STORE")  # fmt: skip
        check_volume(data)
        rerun = check_rerun(pacs, series, data, tmp_path)
    finally:
        scp.stop()
    record_property("observed", describe(item, run, "C-STORE answered after 1 s "
                    "from #10, --dimse-timeout 0.4 s; ")
                    + f" | rerun, fast again: exit 0, {SLICES} of {SLICES} in "
                    f"{rerun.seconds:.1f} s")  # fmt: skip


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 5 MB tmpfs (about 150 of the 300 slices), mounted for the test."""
    with mounted_tmpfs(tmp_path / "small-disk", "5m") as mount:
        yield mount


def test_data_volume_full_mid_series(
    pacs: OrthancServer,
    series: ClonedSeries,
    tmp_path: Path,
    small_disk: Path,
    record_property: Any,
) -> None:
    data = small_disk / "data"
    with Listener(data, free_port(), DEST, "--min-free-mb", "0") as running:
        point_at(pacs, running.port)
        run = start_pull(pacs, series, data, tmp_path, "out",
                         "--retries", "0").finish()  # fmt: skip
        item = check_failed_run(run, data)
        assert 0 < item["arrived"] < SLICES
        assert "No space left on device" in running.log_text()
        # Room again: the same volume, grown.
        subprocess.run(["mount", "-o", "remount,size=40m", str(small_disk)],
                       check=True)  # fmt: skip
        rerun = check_rerun(pacs, series, data, tmp_path)
    record_property("observed", describe(item, run, "5 MB tmpfs; ")
                    + f" | rerun on the tmpfs grown to 40 MB: exit 0, {SLICES} of "
                    f"{SLICES} in {rerun.seconds:.1f} s")  # fmt: skip


def test_association_aborted_mid_instance(
    pacs: OrthancServer, series: ClonedSeries, tmp_path: Path, record_property: Any
) -> None:
    """A relay between Orthanc and the listener sends A-ABORT mid-instance.

    The listener accepts PDUs of 4 KB at most, so each 32 KB slice arrives in
    several fragments; after 400 fragments, the relay replaces the next one
    that is not the last of its data set by an A-ABORT to both sides.
    """
    data = tmp_path / "data"
    with Listener(data, free_port(), DEST, "--max-pdu", "4096") as running:
        relay = AbortingRelay(running.port, abort_after=400)
        try:
            point_at(pacs, relay.port)
            run = start_pull(pacs, series, data, tmp_path, "out",
                             "--retries", "0").finish()  # fmt: skip
            assert relay.aborted.is_set()
            wait_until(lambda: "partial data discarded" in running.log_text(), 10,
                       "the listener discarding the partial instance")  # fmt: skip
            item = check_failed_run(run, data)
            assert 0 < item["arrived"] < SLICES
            relay.abort_after = None
            rerun = check_rerun(pacs, series, data, tmp_path)
        finally:
            relay.close()
    record_property("observed", describe(item, run, "A-ABORT after 400 fragments; "
                    "listener: 'association ended mid-instance; partial data "
                    "discarded'; ") + f" | rerun through the relay: exit 0, "
                    f"{SLICES} of {SLICES} in {rerun.seconds:.1f} s")  # fmt: skip


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_pull_stopped_by_a_signal_says_so_and_leaves_no_half_series(
    pacs: OrthancServer, series: ClonedSeries, tmp_path: Path, stop: signal.Signals
) -> None:
    """SIGTERM (docker stop, ChRIS) or SIGINT while the PACS is still sending.

    The destination answers each C-STORE after 0.3 s, so the move is under way
    when the signal comes: pacsretrieve aborts it at once, says so in one line,
    exits 1, and leaves no report, no staging folder and no half series.
    """
    data = tmp_path / "data"
    scp = SlowScp(data, slow_from=1, delay=0.3)
    try:
        point_at(pacs, scp.port)
        pull = start_pull(pacs, series, data, tmp_path, "out", "--retries", "0")
        wait_until(lambda: arrived(data, series) >= 2, 30, "the move under way")
        pull.process.send_signal(stop)
        signalled = time.monotonic()
        run = pull.finish(timeout=30)
        took = time.monotonic() - signalled
    finally:
        scp.stop()
    assert run.code == 1, run.stderr
    # The move is aborted, not waited out (workers get 10 s at the most).
    assert took < 10
    assert not run.crashed, run.stderr
    assert len(run.errors) == 1, run.stderr
    assert f"stopped by {stop.name}" in run.errors[0]
    # Well before the move would have ended (300 slices at 0.3 s each).
    assert arrived(data, series) < SLICES // 2
    out = tmp_path / "out"
    assert not (out / "report.json").exists()
    assert [p.name for p in out.rglob("*") if p.name.startswith(".")] == []
