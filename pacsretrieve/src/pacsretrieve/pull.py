"""The steps of one pull: move each series, wait for it, copy it out."""

import logging
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import Association

from pacscommon.errors import AssociationAborted, StatusError
from pacscommon.network import (
    Peer,
    Timeouts,
    associate,
    keep_responses_for_requests,
    make_ae,
    release,
)
from pacsretrieve.arrival import wait_for
from pacsretrieve.move import MOVE_MODEL, send_move
from pacsretrieve.output import copy_series
from pacsretrieve.report import RetrieveReport, SeriesResult
from pacsretrieve.selection import SeriesRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullPlan:
    """Everything a pull needs to know."""

    peer: Peer
    timeouts: Timeouts
    destination: str
    data_dir: Path
    outputdir: Path
    wait_timeout: float


def move_all(
    plan: PullPlan, requests: list[SeriesRequest], report: RetrieveReport
) -> None:
    """C-MOVE every requested series over one association, recording outcomes."""
    ae = make_ae(plan.peer.calling_aet, plan.timeouts)
    ae.add_requested_context(MOVE_MODEL)
    assoc = associate(ae, plan.peer)
    keep_responses_for_requests(assoc)
    try:
        _move_each(assoc, plan, requests, report)
    finally:
        release(assoc)


def _move_each(
    assoc: Association,
    plan: PullPlan,
    requests: list[SeriesRequest],
    report: RetrieveReport,
) -> None:
    """Move the series one after the other; stop when the association is lost."""
    for n, request in enumerate(requests):
        result = SeriesResult(request)
        report.results.append(result)
        try:
            result.outcome = send_move(assoc, request, plan.destination, plan.peer)
        except StatusError as exc:
            result.error = str(exc)
            logger.error("%s", exc)
            continue
        except AssociationAborted as exc:
            result.error = str(exc)
            logger.error("%s", exc)
            for rest in requests[n + 1 :]:
                report.results.append(
                    SeriesResult(rest, error="not attempted: association lost")
                )
            return
        o = result.outcome
        logger.info(
            "series %s: PACS reports %d completed, %d failed, %d warning",
            request.SeriesInstanceUID,
            o.completed,
            o.failed,
            o.warning,
        )


def collect_all(plan: PullPlan, report: RetrieveReport) -> None:
    """Wait for each moved series to be on disk, then copy it to the output."""
    for result in report.results:
        if result.outcome is None:
            continue
        uid = result.request.SeriesInstanceUID
        arrival = wait_for(
            plan.data_dir, uid, result.outcome.delivered, plan.wait_timeout
        )
        result.arrived = arrival.count
        _note_expected(result)
        if arrival.entry is None or arrival.count == 0:
            if result.outcome.delivered > 0:
                result.error = (
                    f"series {uid}: the PACS reported {result.outcome.delivered} "
                    f"sent but none is in {plan.data_dir}; is --data-location the "
                    "listener's data directory?"
                )
            continue
        source = plan.data_dir / arrival.entry.path
        copy_series(source, plan.outputdir, arrival.entry.path, uid)
        result.path = arrival.entry.path
        logger.info(
            "series %s: %d of %d instances retrieved",
            uid,
            arrival.count,
            result.outcome.delivered,
        )


def _note_expected(result: SeriesResult) -> None:
    """Warn when the query's instance count differs from what arrived."""
    expected = result.request.expected
    if expected is not None and expected != result.arrived:
        logger.warning(
            "series %s: the query counted %d instances, %d arrived",
            result.request.SeriesInstanceUID,
            expected,
            result.arrived,
        )
