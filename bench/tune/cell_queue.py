"""The shared queue of a ``bench run --queue`` matrix: one Optuna trial per cell (backbone x head x seed) in
a study on Optuna's RDB storage, claimed by one worker at a time, kept by heartbeats, taken over when its
worker dies.

Why Optuna's RDB storage (not Ray, Celery or a table of our own): bench already depends on it and already
shares ``bench tune`` studies between machines through the same URLs (SQLite on one machine, PostgreSQL or
MySQL across several); it needs no server beyond the database, and it has the three things a matrix needs:

- an atomic claim: a cell is an enqueued (WAITING) trial and claiming it is Optuna's WAITING -> RUNNING update
  (``BaseStorage.set_trial_state_values``, a row locked for update), which exactly one worker wins;
- a lease: the claimed trial's heartbeat (``RDBStorage.record_heartbeat``, stamped by the database's clock, so
  machines' clocks do not matter), first stamped just *before* the claim (see :meth:`CellQueue.claim`);
- take-over: ``optuna.storages.fail_stale_trials`` fails a trial whose heartbeat is older than the grace
  period and ``RetryHeartbeatStaleTrialCallback`` queues it again with its user attributes: the cell and its
  MLflow run id, from which the next worker resumes the run's last epoch checkpoint.

Written here, and why: the pop of one queued trial with the storage's public API (``Study.ask`` creates a new
empty trial when the queue is empty) and the heartbeat thread (Optuna beats only inside ``Study.optimize``,
whose trial loop is not a matrix's)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.errors import BenchError
from bench.tune.storage import serialize_sqlite

HEARTBEAT_SECONDS = 10  # a worker stamps its cell's heartbeat this often
GRACE_SECONDS = 120  # a cell without a heartbeat this long belongs to a dead worker: another worker takes it over
TAKEOVERS = 5  # a cell whose workers died this many times is given up (a cell that kills every worker, e.g. OOM)
CELL, RUN_ID, FAILURE = "cell", "run_id", "failure"  # trial user attributes
FILLED = "cells"  # study user attribute: the cell list, set once every cell is queued
FILL_WAIT_SECONDS = 300  # how long later workers wait for the first to prepare and fill the queue


@dataclass(frozen=True)
class Claim:
    """A cell this worker holds: its trial, and the MLflow run an earlier (dead) worker started for it."""

    number: int
    trial_id: int
    cell: str
    run_id: str | None
    takeover: bool  # queued again after its worker died (RetryHeartbeatStaleTrialCallback)


@dataclass(frozen=True)
class CellCounts:
    """Where the matrix stands: cells finished, failed (with a reason), running, queued, given up."""

    done: int
    failed: dict[str, str]
    running: int
    waiting: int
    total: int

    @property
    def settled(self) -> bool:
        """No cell is queued or running: what a worker waits for before it stops."""
        return self.running == 0 and self.waiting == 0


def study_name(experiment: str, recipe_hash: str, cells: list[str]) -> str:
    """The queue's study name, from what the command asks for: workers started with the same command meet
    in one queue, and a different matrix (recipe, experiment or cell list) never mixes in."""
    digest = hashlib.sha256(json.dumps([experiment, recipe_hash, cells]).encode()).hexdigest()[:12]
    return f"bench-run.{experiment}.{recipe_hash}.{digest}"


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


class CellQueue:
    """One matrix's queue in an Optuna storage. Open it with :meth:`open` (the first worker fills it)."""

    def __init__(self, study, storage, study_id: int, heartbeat: int, grace: int):
        self.study, self.storage, self.study_id = study, storage, study_id
        self.heartbeat, self.grace = heartbeat, grace
        self.name = study.study_name
        self._settled: set[int] = set()  # trials this worker finished or failed: not a lost lease

    @classmethod
    def open(
        cls,
        url: str,
        name: str,
        cells: list[str],
        heartbeat: int = HEARTBEAT_SECONDS,
        grace: int = GRACE_SECONDS,
        prepare: Callable[[], None] | None = None,
    ):
        """The queue ``name`` at ``url``, created and filled with ``cells`` by the first worker to come, which
        first calls ``prepare`` (e.g. creating the tracking store, which workers must not race to create);
        the others wait until it is filled."""
        from bench.store import sqlite_path
        from bench.tune.storage import check_storage

        optuna = _quiet_optuna()
        check_storage(url, "--queue")
        db = sqlite_path(url)
        if db is not None and not db.parent.is_dir():
            raise BenchError(f"cannot open the queue {url}: no folder {db.parent}; create it or fix --queue")
        if not 0 < heartbeat < grace:
            raise BenchError(f"the heartbeat ({heartbeat} s) must be positive and under the grace period ({grace} s)")
        storage = _storage(optuna, url, heartbeat, grace)
        study, created = _create_or_load(optuna, storage, name)
        if created:
            try:
                if prepare is not None:
                    prepare()
                for cell in cells:
                    study.enqueue_trial({}, user_attrs={CELL: cell})
                study.set_user_attr(FILLED, cells)
            except BaseException:  # a store that does not open, Ctrl-C: the next worker starts the queue anew
                with contextlib.suppress(Exception):
                    optuna.delete_study(study_name=name, storage=storage)
                raise
        queue = cls(study, storage, storage.get_study_id_from_name(name), heartbeat, grace)
        queue._wait_filled(cells)
        return queue

    def _wait_filled(self, cells: list[str]) -> None:
        """Wait for the first worker to queue every cell (milliseconds); a queue left half filled by a
        worker that died while filling it is an error with the fix."""
        deadline = time.monotonic() + FILL_WAIT_SECONDS
        while self.study.user_attrs.get(FILLED) is None:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the queue {self.name} was left half filled (its first worker stopped while filling it): "
                    f"delete it with `optuna delete-study --study-name {self.name} --storage URL`, then start the "
                    "workers again"
                )
            time.sleep(1)
        if self.study.user_attrs[FILLED] != cells:  # the name hashes the cells: only a hash collision gets here
            raise BenchError(f"the queue {self.name} holds other cells than this command's; use another --queue")

    def claim(self) -> Claim | None:
        """Take one queued cell (after failing the cells of dead workers, which queues them again), or None
        when none is queued.

        The heartbeat is stamped before the claim, not after it: Optuna's stale check skips a RUNNING trial
        that has no heartbeat at all, so a worker killed between a claim and its first stamp left its cell
        RUNNING for ever. Stamped first, every claimed cell has a heartbeat from the moment it is RUNNING
        (on the database's clock, as every later beat) and is taken over ``grace`` seconds after it, however
        soon its worker dies. A stamp on a WAITING trial changes nothing (only RUNNING trials are checked);
        a worker that loses the race for the cell has stamped it too, milliseconds before the winner's
        own beats, which only postpones a take-over by those milliseconds."""
        optuna = _quiet_optuna()
        optuna.storages.fail_stale_trials(self.study)
        waiting = self.storage.get_all_trials(self.study_id, deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        for trial in waiting:
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
            self.storage.record_heartbeat(trial_id)
            try:
                if not self.storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.RUNNING):
                    continue  # another worker took it first
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            takeover = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is not None
            return Claim(trial.number, trial_id, trial.user_attrs[CELL], trial.user_attrs.get(RUN_ID), takeover)
        return None

    @contextlib.contextmanager
    def lease(self, claim: Claim) -> Iterator[threading.Event]:
        """Stamp the claim's heartbeat every ``heartbeat`` seconds while the block runs; the event it yields
        is set if the lease was lost (the trial failed as stale: this worker was cut off for longer than the
        grace period, and the cell was queued again)."""
        stop, lost = threading.Event(), threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat):
                try:
                    finished = self.storage.get_trial(claim.trial_id).state.is_finished()
                    if finished and claim.trial_id not in self._settled:
                        lost.set()
                    if finished:
                        return
                    self.storage.record_heartbeat(claim.trial_id)
                except Exception:  # a database that does not answer: try again next beat
                    continue

        thread = threading.Thread(target=beat, name=f"heartbeat-{claim.cell}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            stop.set()
            thread.join()

    def record_run(self, claim: Claim, run_id: str) -> None:
        """Record the MLflow run training the cell, so that a take-over resumes it."""
        with contextlib.suppress(Exception):  # a lost lease: the cell was already queued again without it
            self.storage.set_trial_user_attr(claim.trial_id, RUN_ID, run_id)

    def finish(self, claim: Claim, value: float) -> bool:
        """Mark the cell done; False when the lease was lost meanwhile (the next claimant finds the run
        finished and only marks it done)."""
        optuna = _quiet_optuna()
        self._settled.add(claim.trial_id)
        try:
            return self.storage.set_trial_state_values(claim.trial_id, optuna.trial.TrialState.COMPLETE, [value])
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def fail(self, claim: Claim, reason: str) -> None:
        """Mark the cell failed with its reason: not retried (a run that raised would raise again)."""
        optuna = _quiet_optuna()
        self._settled.add(claim.trial_id)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # a lost lease: queued again
            self.storage.set_trial_user_attr(claim.trial_id, FAILURE, reason[:1000])
            self.storage.set_trial_state_values(claim.trial_id, optuna.trial.TrialState.FAIL)

    def counts(self) -> CellCounts:
        """Each cell's state from its trials (a taken-over cell has several: the failed stale ones, then the
        one queued again)."""
        optuna = _quiet_optuna()
        states = optuna.trial.TrialState
        cells = list(self.study.user_attrs.get(FILLED) or [])
        by_cell: dict[str, list] = {cell: [] for cell in cells}
        for trial in self.study.get_trials(deepcopy=False):
            by_cell.setdefault(trial.user_attrs.get(CELL, "?"), []).append(trial)
        done = running = waiting = 0
        failed: dict[str, str] = {}
        for cell, own in by_cell.items():
            held = {t.state for t in own}
            if states.COMPLETE in held:
                done += 1
            elif states.RUNNING in held:
                running += 1
            elif states.WAITING in held or self._being_requeued(own[-1]):
                waiting += 1
            else:
                reasons = [t.user_attrs[FAILURE] for t in own if FAILURE in t.user_attrs]
                failed[cell] = reasons[-1] if reasons else f"its workers died {len(own)} times (given up)"
        return CellCounts(done, failed, running, waiting, len(cells))

    def _being_requeued(self, trial) -> bool:
        """A stale trial another worker has just failed and is about to queue again (the two are separate
        writes): pending, not failed, for a grace period after it was failed."""
        import datetime

        if FAILURE in trial.user_attrs or len(trial.system_attrs.get("retry_history", [])) + 1 > TAKEOVERS:
            return False
        ended = trial.datetime_complete
        return ended is not None and datetime.datetime.now() - ended < datetime.timedelta(seconds=self.grace)


def _storage(optuna, url: str, heartbeat: int, grace: int, attempts: int = 5):
    """Optuna's RDB storage with heartbeats and the take-over callback. Retried: workers started together on
    a new SQLite file race to create Optuna's tables (one of them meets the other's version row)."""
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=TAKEOVERS)
    for attempt in range(attempts):
        try:
            storage = optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=grace, heartbeat_stale_trial_callback=retry
            )
            if storage.engine.dialect.name == "sqlite":
                serialize_sqlite(storage.engine)
            return storage
        except Exception as exc:
            if attempt + 1 == attempts:
                raise BenchError(f"cannot open the queue {url}: {str(exc).splitlines()[0][:200]}; fix --queue") from exc
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _create_or_load(optuna, storage, name: str, attempts: int = 5):
    """``(study, created)``: exactly one of the workers started together creates it (the study name is
    unique in the storage); the others load it. Retried: workers racing on a fresh SQLite file may find
    it locked."""
    for attempt in range(attempts):
        try:
            sampler = optuna.samplers.RandomSampler(seed=0)  # never asked: every trial is a queued cell
            try:
                return optuna.create_study(
                    study_name=name, storage=storage, direction="maximize", sampler=sampler
                ), True
            except optuna.exceptions.DuplicatedStudyError:
                return optuna.load_study(study_name=name, storage=storage, sampler=sampler), False
        except Exception as exc:
            if attempt + 1 == attempts:
                raise BenchError(f"cannot open the queue {name}: {str(exc).splitlines()[0][:200]}") from exc
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")
