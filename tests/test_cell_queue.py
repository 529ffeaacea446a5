"""The matrix queue on Optuna's storage, without training: claims are exclusive across processes, a cell
whose worker stops beating is taken over with its run id, and the counts say when a matrix is settled."""

import multiprocessing
import time

import pytest

from bench.errors import BenchError
from bench.tune.cell_queue import CellQueue, study_name

CELLS = [f"baseline_cnn+linear/s{seed}" for seed in range(12)]


def _claim_all(url: str, name: str, out) -> None:
    """A worker process: claim cells until none is queued, marking each done; report what it took."""
    queue = CellQueue.open(url, name, CELLS, heartbeat=1, grace=30)
    taken = []
    while (held := queue.claim()) is not None:
        taken.append(held.cell)
        assert queue.finish(held, 0.5)
    out.put(taken)


def _claims_are_exclusive(url: str) -> None:
    name = study_name("exp", "abc123", CELLS)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(url, name, out)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    taken = [out.get(timeout=5) for _ in workers]
    claimed = [cell for worker in taken for cell in worker]
    assert sorted(claimed) == sorted(CELLS)  # each cell once, none twice, none lost
    counts = CellQueue.open(url, name, CELLS).counts()
    assert (counts.done, counts.total, counts.failed, counts.settled) == (12, 12, {}, True)


def test_three_processes_claim_each_cell_exactly_once_on_sqlite(tmp_path):
    _claims_are_exclusive(f"sqlite:///{tmp_path / 'queue.db'}")


def test_three_processes_claim_each_cell_exactly_once_on_postgresql(postgres_url):
    _claims_are_exclusive(postgres_url)


def test_a_silent_claim_is_taken_over_with_its_run_id_after_the_grace_period(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    name = study_name("exp", "abc123", CELLS[:2])
    dead = CellQueue.open(url, name, CELLS[:2], heartbeat=1, grace=3)
    held = dead.claim()
    dead.record_run(held, "run-of-the-dead-worker")  # then it stops beating: killed
    other = CellQueue.open(url, name, CELLS[:2], heartbeat=1, grace=3)
    second = other.claim()
    assert second.cell != held.cell and not second.takeover  # the live claim is not stolen
    assert other.claim() is None and not other.counts().settled  # the dead one is still within its grace
    with other.lease(second):  # the live worker beats; the dead one does not
        time.sleep(4.5)
        taken = other.claim()
        assert (taken.cell, taken.run_id, taken.takeover) == (held.cell, "run-of-the-dead-worker", True)
        assert other.finish(second, 0.6)
    assert not dead.finish(held, 0.1)  # the dead worker's lease is gone: it cannot mark the cell
    assert other.finish(taken, 0.7)
    counts = other.counts()
    assert (counts.done, counts.running, counts.waiting, counts.settled) == (2, 0, 0, True)


class Killed(BaseException):
    """A worker's process ending at this instant (SIGKILL): none of its code after this point runs."""


def _taken_over_within(queue: CellQueue, seconds: float):
    """Poll ``queue`` for a cell as an idle worker does; the claim, or None after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (taken := queue.claim()) is not None:
            return taken
        time.sleep(0.5)
    return None


def test_a_worker_killed_the_instant_it_claims_a_cell_leaves_it_to_be_taken_over(tmp_path):
    """Killed right after the claim's write (the cell RUNNING), before anything else it would write: the
    cell still had a heartbeat (stamped before the claim), so it is taken over after the grace period.
    Stamped after the claim, it had none, and Optuna never found it stale: RUNNING for ever."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    name = study_name("exp", "abc123", CELLS[:1])
    dead = CellQueue.open(url, name, CELLS[:1], heartbeat=1, grace=3)
    claim_write = dead.storage.set_trial_state_values

    def killed_after_the_claim(trial_id, state, values=None):
        claim_write(trial_id, state, values)
        raise Killed

    dead.storage.set_trial_state_values = killed_after_the_claim
    claimed_at = time.monotonic()
    with pytest.raises(Killed):
        dead.claim()
    other = CellQueue.open(url, name, CELLS[:1], heartbeat=1, grace=3)
    assert other.claim() is None and other.counts().running == 1  # claimed, and within its grace
    taken = _taken_over_within(other, 15)
    assert taken is not None, "a cell claimed by a worker killed before its first heartbeat stayed RUNNING"
    assert (taken.cell, taken.takeover) == (CELLS[0], True)
    assert time.monotonic() - claimed_at > 2.5  # not before its grace period (3 s)
    assert other.finish(taken, 0.5) and other.counts().settled


def test_a_lease_keeps_a_long_cell_and_reports_a_lost_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    name = study_name("exp", "abc123", CELLS[:1])
    queue = CellQueue.open(url, name, CELLS[:1], heartbeat=1, grace=3)
    held = queue.claim()
    with queue.lease(held) as lost:
        time.sleep(5)  # longer than the grace: the heartbeats keep it
        assert queue.claim() is None and not lost.is_set()
    time.sleep(4.5)  # the lease ended without a finish (a killed cell): stale now
    other = CellQueue.open(url, name, CELLS[:1], heartbeat=1, grace=3)
    with queue.lease(held) as lost:  # the first worker comes back, too late
        retaken = other.claim()
        time.sleep(2.5)
        assert retaken.cell == held.cell and lost.is_set()


def test_a_failed_cell_keeps_its_reason_and_is_not_retried(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    queue = CellQueue.open(url, study_name("e", "h", CELLS[:1]), CELLS[:1], heartbeat=1, grace=2)
    queue.fail(queue.claim(), "BenchError: diverged")
    time.sleep(2.5)
    assert queue.claim() is None
    counts = queue.counts()
    assert counts.settled and counts.failed == {CELLS[0]: "BenchError: diverged"} and counts.done == 0


def test_the_study_name_follows_the_matrix():
    name = study_name("fer2013", "abc123", CELLS)
    assert name == study_name("fer2013", "abc123", list(CELLS))
    assert name.startswith("bench-run.fer2013.abc123.")
    others = {study_name("fer2013", "abc124", CELLS), study_name("ferplus", "abc123", CELLS)}
    others |= {study_name("fer2013", "abc123", CELLS[:-1]), study_name("fer2013", "abc123", CELLS[::-1])}
    assert name not in others and len(others) == 4


def test_a_bad_queue_url_or_an_mlflow_store_is_one_line(tmp_path):
    with pytest.raises(BenchError, match="cannot open the queue"):
        CellQueue.open("sqlite:////no/such/folder/q.db", "n", CELLS)
    import sqlite3

    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as con:
        con.execute("create table experiments (id int)")
        con.execute("create table runs (id int)")
    with pytest.raises(BenchError, match="MLflow tracking database"):
        CellQueue.open(f"sqlite:///{db}", "n", CELLS)
    with pytest.raises(BenchError, match="heartbeat"):
        CellQueue.open(f"sqlite:///{tmp_path / 'q.db'}", "n", CELLS, heartbeat=5, grace=5)
