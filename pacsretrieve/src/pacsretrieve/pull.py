"""The steps of one pull: check the PACS, plan, retrieve, wait, copy out."""

import logging
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pacscommon.peers import Peer, Timeouts, release
from pacsretrieve.arrival import WaitBounds, look_all, total, wait_for
from pacsretrieve.echo import echo
from pacsretrieve.instances import ArrivalWatcher, InstanceNotes
from pacsretrieve.jobs import RetrieveJob, by_study, plan_jobs
from pacsretrieve.output import copy_series
from pacsretrieve.report import RetrieveReport, SeriesResult
from pacsretrieve.retriever import MODE_GET, MODE_MOVE, MODE_SELF, Retriever
from pacsretrieve.selection import SeriesRequest
from pacsretrieve.workers import RetryPolicy, retrying, run_jobs

if TYPE_CHECKING:
    from pacsretrieve.local import LocalStore

logger = logging.getLogger(__name__)

# What C-FIND, C-GET, the in-process SCP and --preview need (pynetdicom, pydicom,
# numpy) is imported where they are used: a pull by C-MOVE, the common case,
# starts without them (bench/RESULTS.md, "Pull").


@dataclass(frozen=True)
class PullPlan:
    """Everything a pull needs to know."""

    peer: Peer
    timeouts: Timeouts
    destination: str
    data_dir: Path  # the listener's, in move mode
    outputdir: Path
    wait_timeout: float
    mode: str = MODE_MOVE
    deadline: float = 0.0  # seconds for the whole pull; 0 for none
    retries: int = 2
    retry_delay: float = 1.0
    parallel: int = 1
    listen_port: int = 11113
    listen_bind: str = "127.0.0.1"
    dry_run: bool = False
    preview: bool = False


@dataclass
class Prepared:
    """What the pull learned from the PACS before retrieving."""

    jobs: list[RetrieveJob]
    sop_classes: set[str]


def run_pull(
    plan: PullPlan, chosen: list[SeriesRequest], report: RetrieveReport
) -> None:
    """Pull the chosen series into the output directory, recording each outcome."""
    started = time.monotonic()
    policy = RetryPolicy(
        retries=plan.retries,
        delay=plan.retry_delay,
        deadline=started + plan.deadline if plan.deadline > 0 else None,
    )
    retrying(policy, f"C-ECHO of {plan.peer}", lambda: echo(plan.peer, plan.timeouts))
    prepared = _prepared(plan, policy, chosen)
    by_request = {id(r): j for j in prepared.jobs for r in j.requests}
    report.results = [SeriesResult(r, by_request[id(r)]) for r in chosen]
    if plan.dry_run:
        _log_plan(prepared.jobs)
        return
    notes = InstanceNotes()
    with _local_store(plan) as store:
        data_dir = plan.data_dir if store is None else store.data_dir
        retriever = _retriever(plan, prepared, store, notes)
        with _watcher(plan, notes, data_dir, chosen):
            run_jobs(retriever, policy, prepared.jobs, plan.parallel)
        bounds = WaitBounds(plan.wait_timeout, policy.deadline)
        for job in prepared.jobs:
            collect(plan, data_dir, job, report, bounds, notes)


def _watcher(
    plan: PullPlan, notes: InstanceNotes, data_dir: Path, chosen: list[SeriesRequest]
) -> AbstractContextManager[ArrivalWatcher | None]:
    """Return what reads the files while they arrive, where that costs nothing."""
    # With C-MOVE to the listener, another process receives: this one is idle
    # until the final response. In get and self modes it is the receiver.
    if plan.mode != MODE_MOVE:
        return nullcontext(None)
    uids = [r.SeriesInstanceUID for r in chosen]
    return ArrivalWatcher(notes, data_dir, uids)


def _prepared(
    plan: PullPlan, policy: RetryPolicy, chosen: list[SeriesRequest]
) -> "Prepared":
    """Return ``prepare``'s answer, retrying transient failures."""
    found: list[Prepared] = []
    retrying(policy, "C-FIND", lambda: found.append(prepare(plan, chosen)))
    return found[-1]


def prepare(plan: PullPlan, chosen: list[SeriesRequest]) -> Prepared:
    """Plan the retrieve jobs, asking the PACS what it holds where it matters."""
    several = [s for s in by_study(chosen) if len(s.requests) > 1]
    if not several and plan.mode != MODE_GET:
        return Prepared(plan_jobs(chosen, set()), set())
    from pacsretrieve.query import open_find, series_of_study, sop_classes_of_series

    assoc = open_find(plan.peer, plan.timeouts)
    try:
        whole = {
            s.StudyInstanceUID
            for s in several
            if series_of_study(assoc, s.StudyInstanceUID, plan.peer)
            == {r.SeriesInstanceUID for r in s.requests}
        }
        classes: set[str] = set()
        if plan.mode == MODE_GET:
            for r in chosen:
                classes |= sop_classes_of_series(
                    assoc, r.StudyInstanceUID, r.SeriesInstanceUID, plan.peer
                )
    finally:
        release(assoc)
    return Prepared(plan_jobs(chosen, whole), classes)


def _log_plan(jobs: list[RetrieveJob]) -> None:
    """Log what a dry run would retrieve, one line per series."""
    for job in jobs:
        for r in job.requests:
            expected = "?" if r.expected is None else str(r.expected)
            logger.info(
                "would pull series %s (%s instances) by a %s-level retrieve",
                r.SeriesInstanceUID,
                expected,
                job.level,
            )


def _local_store(plan: PullPlan) -> AbstractContextManager["LocalStore | None"]:
    """Return the in-process storage engine the mode needs, if any."""
    if plan.mode == MODE_MOVE:
        return nullcontext(None)
    from pacscommon.server import ServerConfig
    from pacsretrieve.local import LocalStore

    config = None
    if plan.mode == MODE_SELF:
        config = ServerConfig(
            aet=plan.destination, port=plan.listen_port, bind=plan.listen_bind
        )
    return LocalStore(plan.outputdir, config)


def _retriever(
    plan: PullPlan,
    prepared: Prepared,
    store: "LocalStore | None",
    notes: InstanceNotes,
) -> Retriever:
    """Return how this mode asks for each job."""
    if plan.mode != MODE_GET or store is None:
        return Retriever(plan.peer, plan.timeouts, plan.destination)
    from pacscommon.arrivals import Receiver
    from pacsretrieve.contexts import get_contexts, get_roles

    return Retriever(
        plan.peer,
        plan.timeouts,
        None,
        contexts=get_contexts(prepared.sop_classes),
        roles=get_roles(prepared.sop_classes),
        receiver=Receiver(
            store.handlers, store.engine.incoming_folder(), notes.remember
        ),
    )


def collect(
    plan: PullPlan,
    data_dir: Path,
    job: RetrieveJob,
    report: RetrieveReport,
    bounds: WaitBounds,
    notes: InstanceNotes,
) -> None:
    """Wait for a retrieved job's instances, then copy its series out."""
    results = [r for r in report.results if r.job is job]
    expected = {r.request.SeriesInstanceUID: r.request.expected for r in results}
    o = job.outcome
    if o is None or job.error is not None:
        # A failure is reported, not waited for.
        arrivals = look_all(data_dir, list(expected))
    else:
        arrivals = wait_for(data_dir, expected, o.delivered, bounds)
    whole = o is not None and total(arrivals) >= o.delivered
    for result in results:
        arrival = arrivals[result.request.SeriesInstanceUID]
        result.arrived, result.whole = arrival.count, whole
        if job.error is None and arrival.entry is not None and arrival.count:
            _copy_out(plan, data_dir, result, arrival.entry.path, notes)
        _note_result(plan, data_dir, result)


def _copy_out(
    plan: PullPlan,
    data_dir: Path,
    result: SeriesResult,
    relative: str,
    notes: InstanceNotes,
) -> None:
    """Copy one series folder into the output and describe its instances."""
    uid = result.request.SeriesInstanceUID
    target = copy_series(data_dir / relative, plan.outputdir, relative, uid)
    result.path = relative
    result.instances = notes.describe(target, plan.outputdir)
    if plan.preview:
        from pacsretrieve.preview import write_preview

        png = write_preview(target, uid)
        result.preview = None if png is None else png.relative_to(plan.outputdir)


def _where_they_went(plan: PullPlan) -> str:
    """Say what to check when the PACS sent instances that did not arrive."""
    if plan.mode == MODE_SELF:
        return (
            f"does the PACS's entry for {plan.destination} name this program's "
            f"--listen-port {plan.listen_port}, not another listener's?"
        )
    return "is --data-location the listener's data directory?"


def _note_result(plan: PullPlan, data_dir: Path, result: SeriesResult) -> None:
    """Log a series' outcome and say why it is not whole, where it is not."""
    uid = result.request.SeriesInstanceUID
    o, expected = result.outcome, result.request.expected
    if result.reason is None and o is not None and o.delivered == 0 and expected:
        result.error = (
            f"series {uid}: the PACS reported 0x{o.status or 0:04X} but sent none "
            f"of the {expected} instances the query counted"
        )
    elif result.reason is None and o is not None and o.delivered and not result.arrived:
        result.error = (
            f"series {uid}: the PACS reported {o.delivered} sent but none is in "
            f"{data_dir}; {_where_they_went(plan)}"
        )
    if result.matches_query is False:
        logger.warning(
            "series %s: the query counted %d instances, %d arrived",
            uid,
            expected,
            result.arrived,
        )
    if result.reason is None:
        logger.info(
            "series %s: %d of %s instances received%s",
            uid,
            result.arrived,
            "?" if expected is None else expected,
            "" if result.complete else " (not whole)",
        )
