"""One worker of a ``bench run --queue URL`` matrix: claim a cell nobody holds, train it (or resume the run a
dead worker left), mark it done, and stop once no cell is queued or running.

Why apart from :mod:`bench.runner`: the runner trains one run and knows nothing of other processes; this is
the loop several processes share, through :class:`bench.tune.cell_queue.CellQueue` (Optuna's storage: the
claim, the lease, the take-over). A cell's MLflow run id is recorded in its queue entry as soon as the run
holds its checkpoint folder, so a worker that takes the cell over resumes that run from its last epoch
checkpoint, exactly as ``bench run --resume`` does (and with the same claim on the folder: two processes
never train one run at once)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench import interrupts
from bench import run_record as rec
from bench import tracking as trk
from bench.claims import ClaimHeld, claim, release
from bench.data.dataset import FerData
from bench.errors import BenchError, Interrupted
from bench.recipe_io import recipe_hash
from bench.resume import drop_if_unresumable
from bench.runner import RunRequest, RunSummary, resume_request, run_one
from bench.tune.cell_queue import GRACE_SECONDS, HEARTBEAT_SECONDS, CellCounts, CellQueue, Claim, study_name


class LeaseLost(BenchError):
    """This worker's cell was taken over while it trained it: its heartbeats did not reach the queue for the
    grace period (a database out of reach, a suspended process), so the queue gave the cell to another worker."""


@dataclass(frozen=True)
class QueueSettings:
    """Where the queue lives and how long a silent worker keeps its cell (see :mod:`bench.tune.cell_queue`)."""

    url: str
    heartbeat: int = HEARTBEAT_SECONDS
    grace: int = GRACE_SECONDS


def cell_key(req: RunRequest) -> str:
    """A cell's name in the queue: what a run of the matrix trains."""
    model = req.recipe.model
    return f"{model.backbone}+{model.head}/s{req.recipe.run.seed}"


def open_queue(requests: list[RunRequest], settings: QueueSettings) -> CellQueue:
    """The matrix's queue, named after the command (experiment, recipe hash, cells): workers started with
    the same command meet in it. The worker that creates it first creates the tracking store and the
    experiment (workers started together on a new SQLite store otherwise race through MLflow's schema
    migrations and fail: "No such index")."""
    base = requests[0].recipe
    cells = [cell_key(r) for r in requests]
    if len(set(cells)) != len(cells):
        raise BenchError("the matrix names a cell twice; give each --backbone and --seed once")
    name = study_name(base.run.experiment, recipe_hash(base), cells)

    def prepare() -> None:  # the first worker creates the tracking store: MLflow's migrations must not race
        trk.ensure_experiment(base.run.experiment, trk.connect(requests[0].tracking_uri))

    return CellQueue.open(settings.url, name, cells, settings.heartbeat, settings.grace, prepare)


def work(
    requests: list[RunRequest],
    data: FerData,
    queue: CellQueue,
    report: Callable[[dict], None],
    progress: Callable[[str], Callable[[dict], None] | None] = lambda cell: None,
) -> tuple[list[RunSummary], CellCounts]:
    """Claim and run cells until none is queued or running; returns this worker's summaries and where the
    matrix stands. ``report`` gets one event per step (``event``: claimed, resumed, restarted, finished,
    lost, waiting); ``progress(cell)`` gives a cell's progress callback. Raises :class:`LeaseLost` when
    this worker's cell is taken over while it trains it (see :func:`lease_checked`)."""
    by_cell = {cell_key(r): r for r in requests}
    summaries: list[RunSummary] = []
    waited = False
    while True:
        interrupts.check()
        held = queue.claim()
        if held is None:
            counts = queue.counts()
            if counts.settled:
                return summaries, counts
            if not waited:
                report({"event": "waiting", "counts": counts, "grace": queue.grace})
            waited = True
            time.sleep(queue.heartbeat)
            continue
        waited = False
        report({"event": "claimed", "cell": held.cell, "trial": held.number, "takeover": held.takeover})
        with queue.lease(held) as lost:
            checked = lease_checked(progress(held.cell), lost, held.cell, queue.grace)
            summary = _run_cell(by_cell[held.cell], data, queue, held, report, checked)
        if summary is not None:
            summaries.append(summary)


def lease_checked(
    show: Callable[[dict], None] | None, lost: threading.Event, cell: str, grace: int
) -> Callable[[dict], None]:
    """The cell's progress callback (``show``, or none), which also stops the cell once its lease is lost
    (``lost``, set by :meth:`CellQueue.lease`'s heartbeat): the trainer calls it every second, so the
    worker stops within a second of the heartbeat that finds its cell taken over. Training on would waste
    the rest of the cell: the new claimant waits for this worker's claim on the run's folder, then only
    marks the finished run done. Stopped, the run is FAILED with its checkpoint kept, and the new claimant
    resumes it from its last epoch."""

    def report(status: dict) -> None:
        if lost.is_set():
            raise LeaseLost(
                f"{cell}: this worker lost its lease on the cell (no heartbeat reached the queue for {grace} s) "
                "and another worker took it over; this worker stopped, its run resumes there from its last "
                "epoch checkpoint; start this worker again to go on with the matrix"
            )
        if show is not None:
            show(status)

    return report


def _run_cell(req: RunRequest, data: FerData, queue: CellQueue, held: Claim, report, progress) -> RunSummary | None:
    """Train the cell, or resume its run, reporting to ``progress``; mark it done (or failed, then raise as
    a serial run would)."""
    try:
        resumed = _resumed(req, held, queue, report) if held.run_id else None
        if isinstance(resumed, float):  # its run had finished: only the queue did not know
            queue.finish(held, resumed)
            return None
        start = resumed or replace(req, on_start=lambda run_id: queue.record_run(held, run_id))
        summary = run_one(replace(start, progress=progress), data)
    except LeaseLost:  # the cell is another worker's now: not failed, only this worker stops
        raise
    except Interrupted as exc:  # the cell keeps its lease until the grace period ends, then is taken over
        raise Interrupted(
            f"{exc}; in the queue, another worker (or this command run again) takes the cell over and "
            f"resumes it {queue.grace} s after this worker's last heartbeat"
        ) from exc
    except BenchError as exc:
        queue.fail(held, str(exc))
        raise
    except Exception as exc:
        queue.fail(held, f"{exc.__class__.__name__}: {exc}")
        raise
    value = summary.test_metrics.get("macro_f1", float("nan"))
    if not queue.finish(held, value):
        report({"event": "lost", "cell": held.cell, "run_id": summary.run_id})
    report({"event": "finished", "cell": held.cell, "summary": summary})
    return summary


def _resumed(req: RunRequest, held: Claim, queue: CellQueue, report) -> RunRequest | float | None:
    """The request that resumes the run a dead worker left for this cell; that run's test macro-F1 when it
    finished after all (its worker died, or lost its lease, between the run's end and the queue's); None
    when it has no checkpoint here (it died in its first epoch, or its folder is not shared with this
    machine): the old run is marked FAILED and the cell starts a new one."""
    run_id = held.run_id
    while True:
        trk.connect(req.tracking_uri)
        logged = trk.find_run(run_id)
        if logged.info.status == "FINISHED":
            report({"event": "resumed", "cell": held.cell, "run_id": run_id, "finished": True})
            return float(logged.data.metrics.get(rec.split_metric("test", "macro_f1"), 0.0))
        tag = logged.data.tags.get(rec.CHECKPOINT_DIR_TAG)  # absent: its worker died as the run started
        folder = Path(tag) if tag else None
        try:
            if folder is not None and folder.is_dir():
                claim(folder, f"run {run_id}")  # held until run_one ends; a live first worker is waited for
            if folder is not None and folder.is_dir() and rec.holds_checkpoint(folder):
                resume, _ = resume_request(run_id, req.tracking_uri, req.save_model)
                report({"event": "resumed", "cell": held.cell, "run_id": run_id, "folder": str(folder)})
                return replace(resume, verbose=req.verbose, checkpoint_root=req.checkpoint_root)
        except ClaimHeld:
            time.sleep(queue.heartbeat)
            continue
        break
    if folder is not None and folder.is_dir():
        drop_if_unresumable(folder)  # only its claim file: nothing to keep
        release(folder)
    why = f"its worker stopped before a checkpoint was written to {folder}, as seen from this worker"
    trk.set_run_status(run_id, "FAILED", f"{why}; the cell was restarted as a new run")
    report({"event": "restarted", "cell": held.cell, "run_id": run_id, "why": why})
    return None
