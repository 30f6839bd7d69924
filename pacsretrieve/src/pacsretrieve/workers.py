"""Run the retrieve jobs: a few workers, each over its own association, with retries.

A refused connection, a transient rejection (PS3.8 9.3.4, result 2) and an
abort are retried after a back-off that doubles, up to ``--retries`` times; a
failure status is the PACS's answer, and is not. A worker whose retries ran out
on a lost association stops the others: the PACS is not answering.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from pacscommon.errors import (
    AssociationAborted,
    AssociationRejected,
    Interrupted,
    OperationError,
    PeerUnreachable,
    StatusError,
)
from pacscommon.peers import Association, Peer, release
from pacsretrieve.jobs import RetrieveJob
from pacsretrieve.move import check_final
from pacsretrieve.retriever import Retriever

logger = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
STOP_WAIT = 10.0  # seconds the workers have to wind down when told to stop


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient failures are retried."""

    retries: int = 2
    delay: float = 1.0
    deadline: float | None = None  # time.monotonic() after which nothing starts

    def pause(self, attempt: int) -> float:
        """Return the back-off before retry number ``attempt`` (from 1)."""
        return min(self.delay * 2 ** (attempt - 1), MAX_BACKOFF)

    def expired(self) -> bool:
        """Return whether the overall deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline


def is_transient(exc: OperationError) -> bool:
    """Return whether a retry may cure ``exc``."""
    if isinstance(exc, PeerUnreachable | AssociationAborted):
        return True
    if isinstance(exc, AssociationRejected):
        return bool(getattr(exc, "transient", False))
    return False


def retrying(policy: RetryPolicy, what: str, attempt_once: Callable[[], None]) -> None:
    """Call ``attempt_once`` until it succeeds or fails for good; raise the last."""
    attempt = 0
    while True:
        try:
            attempt_once()
            return
        except (PeerUnreachable, AssociationAborted, AssociationRejected) as exc:
            attempt += 1
            if not is_transient(exc) or attempt > policy.retries or policy.expired():
                raise
            pause = policy.pause(attempt)
            logger.warning(
                "%s: %s; retry %d of %d in %.1f s",
                what,
                exc,
                attempt,
                policy.retries,
                pause,
            )
            time.sleep(pause)


class Worker:
    """One association, reused for job after job and reopened after a failure."""

    def __init__(
        self, retriever: Retriever, policy: RetryPolicy, stop: threading.Event
    ) -> None:
        self.retriever = retriever
        self.policy = policy
        self.stop = stop
        self._assoc: Association | None = None

    def run(self, job: RetrieveJob) -> None:
        """Retrieve one job, retrying transient failures; record the outcome."""

        def attempt_once() -> None:
            if self.stop.is_set():
                raise Interrupted(f"{job.describe()}: stopped before it was done")
            job.attempts += 1
            try:
                if self._assoc is None:
                    self._assoc = self.retriever.open()
                job.outcome = self.retriever.send(self._assoc, job)
            except OperationError:
                self.close()
                raise

        retrying(self.policy, job.describe(), attempt_once)
        if job.outcome is not None:
            what = job.describe()
            check_final(job.outcome, what, self.retriever.destination, self.peer)

    @property
    def peer(self) -> Peer:
        """Return the PACS this worker talks to."""
        return self.retriever.peer

    def abort(self) -> None:
        """Abort the association under way, if any, from another thread."""
        assoc = self._assoc
        if assoc is not None:
            assoc.abort()

    def close(self) -> None:
        """Release the association, if one is open."""
        if self._assoc is not None:
            release(self._assoc)
            self._assoc = None


def run_jobs(
    retriever: Retriever, policy: RetryPolicy, jobs: list[RetrieveJob], parallel: int
) -> None:
    """Retrieve every job with up to ``parallel`` workers; record each outcome."""
    todo: queue.SimpleQueue[RetrieveJob] = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)
    stop = threading.Event()
    workers = [Worker(retriever, policy, stop) for _ in range(min(parallel, len(jobs)))]
    pool = ThreadPoolExecutor(max(1, len(workers)), thread_name_prefix="retrieve")
    futures = [pool.submit(_work, worker, todo, stop) for worker in workers]
    try:
        for future in futures:
            future.result()
    except BaseException:
        # Told to stop (SIGTERM, SIGINT): end the retrieves under way now, and
        # let the workers wind down before the caller cleans up after them.
        stop.set()
        for worker in workers:
            worker.abort()
        wait(futures, timeout=STOP_WAIT)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _work(
    worker: Worker, todo: "queue.SimpleQueue[RetrieveJob]", stop: threading.Event
) -> None:
    """Take jobs off the queue until it is empty; release the association."""
    try:
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            _run_one(worker, job, stop)
    finally:
        worker.close()


def _run_one(worker: Worker, job: RetrieveJob, stop: threading.Event) -> None:
    """Run one job unless the pull was stopped; record its error."""
    if stop.is_set():
        job.error = "not attempted: the PACS stopped answering"
        return
    if worker.policy.expired():
        job.error = "not attempted: --deadline passed"
        return
    try:
        worker.run(job)
    except StatusError as exc:
        job.error = str(exc)
        logger.error("%s", exc)
    except OperationError as exc:
        job.error = str(exc)
        logger.error("%s", exc)
        stop.set()
    except Exception as exc:  # noqa: BLE001 - a worker records, never dies
        job.error = f"{job.describe()}: unexpected error: {exc}"
        logger.exception("%s", job.error)
    else:
        o = job.outcome
        if o is not None:
            logger.info(
                "%s: PACS reports %d completed, %d failed, %d warning (0x%04X)",
                job.describe(),
                o.completed,
                o.failed,
                o.warning,
                o.status or 0,
            )
