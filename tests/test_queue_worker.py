"""``bench run --queue``: workers started with one command train each cell of the matrix exactly once, a
worker killed mid-cell leaves its cell to the other (resumed from its epoch checkpoint), and the
leaderboard equals a serial run's. Real subprocess workers on tiny synthetic data."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli

TINY_TOML = """
description = "one short phase on tiny data (queue tests)"
[data]
max_train = 64
max_eval = 48
[data.augment]
enabled = false
[[phases]]
name = "all"
epochs = 3
train = "all"
optimizer = "adam"
learning_rate = 1e-3
"""
GRACE = 8  # --queue-grace of these tests: a killed worker's cell is taken over 8 s after its last heartbeat


def _matrix(tmp_path, queue_url, *more):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_TOML)
    args = ["run", "--backbone", "baseline_cnn", "--head", "linear", "--recipe", str(recipe)]
    args += ["--data", "synthetic:300:1", "--experiment", "queue", "--seed", "1", "--seed", "2", "--deterministic"]
    if queue_url:
        args += ["--queue", queue_url, "--queue-grace", str(GRACE)]
    return [*args, "--no-save-model", *more]


def _worker(tmp_path, args, store: str = "mlruns") -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / store / 'mlflow.db'}"}
    (tmp_path / store).mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _runs(tmp_path, store: str = "mlruns"):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / store / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("queue")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    return [r for r in runs if r.data.tags.get("bench.kind") != "leaderboard"]


def _per_cell(runs) -> dict[str, list[str]]:
    cells: dict[str, list[str]] = {}
    for run in runs:
        cells.setdefault(f"s{run.data.params['seed']}", []).append(run.info.status)
    return cells


def _leaderboard(tmp_path, store: str) -> list[dict]:
    uri = f"sqlite:///{tmp_path / store / 'mlflow.db'}"
    result = CliRunner().invoke(cli, ["compare", "--experiment", "queue", "--tracking-uri", uri, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _two_workers_train_each_cell_once(tmp_path, queue: str) -> None:
    workers = [_worker(tmp_path, _matrix(tmp_path, queue)) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    claimed = [line.split(":")[0][3:] for out in outputs for line in out.splitlines() if line.startswith("== ")]
    assert sorted(claimed) == ["baseline_cnn+linear/s1", "baseline_cnn+linear/s2"], outputs  # each once
    assert _per_cell(_runs(tmp_path)) == {"s1": ["FINISHED"], "s2": ["FINISHED"]}  # one MLflow run per cell


@pytest.mark.slow  # 3 processes that load TensorFlow: 381 s nice'd on the shared 2-core machine
def test_two_workers_train_each_cell_once_and_rank_as_a_serial_run(tmp_path):
    _two_workers_train_each_cell_once(tmp_path, f"sqlite:///{tmp_path / 'queue.db'}")
    serial = _worker(tmp_path, _matrix(tmp_path, None), store="serial")
    out = serial.communicate(timeout=600)[0]
    assert serial.returncode == 0, out
    queued, alone = _leaderboard(tmp_path, "mlruns"), _leaderboard(tmp_path, "serial")
    figures = ("config", "n_runs", "macro_f1_mean", "macro_f1_std", "accuracy_mean", "balanced_accuracy_mean")
    assert [{k: row.get(k) for k in figures} for row in queued] == [{k: row.get(k) for k in figures} for row in alone]
    assert queued and queued[0]["n_runs"] == 2


def _owner_of_first_checkpoint(tmp_path, workers, timeout: float = 300) -> tuple[subprocess.Popen, Path]:
    """The worker whose run wrote an epoch checkpoint first (its folder's claim file names its pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in (tmp_path / "mlruns" / "checkpoints").glob("*/state.json"):
            owner = (state.parent / "claim.lock").read_text()
            for w in workers:
                if f"pid {w.pid} " in owner:
                    return w, state.parent
        time.sleep(0.05)
    raise AssertionError("no worker wrote an epoch checkpoint in time")


@pytest.mark.slow  # 2 TensorFlow processes, 12 epochs and an 8 s grace: 259 s nice'd on the shared machine
def test_a_worker_killed_mid_cell_leaves_it_to_the_other_which_resumes_it(tmp_path):
    queue = f"sqlite:///{tmp_path / 'queue.db'}"
    args = _matrix(tmp_path, queue, "--set", "phases.0.epochs=12")
    workers = [_worker(tmp_path, args) for _ in range(2)]
    victim, folder = _owner_of_first_checkpoint(tmp_path, workers)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    (survivor,) = [w for w in workers if w is not victim]
    out = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, out
    run_id = folder.name
    assert f"resuming run {run_id} from its last epoch checkpoint" in out, out
    assert "taken over from a dead worker" in out
    runs = _runs(tmp_path)
    assert _per_cell(runs) == {"s1": ["FINISHED"], "s2": ["FINISHED"]}  # the killed cell's run resumed, not redone
    (resumed,) = [r for r in runs if r.info.run_id == run_id]
    assert resumed.data.metrics["epochs_actual"] == 12 and "test_macro_f1" in resumed.data.metrics
    assert not folder.exists()  # removed once everything was logged


def test_queue_and_resume_are_one_or_the_other(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--resume", "abc", "--queue", f"sqlite:///{tmp_path / 'q.db'}"])
    assert result.exit_code == 2 and "give one" in result.output


@pytest.mark.parametrize("option", ["--queue", "--queue-grace", "--checkpoint-root"])
def test_the_queue_options_are_in_run_help(option):
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0 and option in result.output


def test_a_worker_whose_cell_is_taken_over_mid_training_stops_with_one_line(tmp_path, monkeypatch):
    """Its heartbeats stop reaching the queue (a database out of reach) while it trains: another worker takes
    the cell over after the grace period, and this one stops at its next progress report (every second)
    with a LeaseLost line, instead of training to the end. No TensorFlow: run_one is a stand-in that trains
    by reporting progress, as the trainer does."""
    from bench import queue_worker as qw
    from bench.plan import resolve_recipe
    from bench.runner import RunRequest
    from bench.tune.cell_queue import CellQueue, study_name

    req = RunRequest(resolve_recipe("smoke", [], backbone="baseline_cnn", data="synthetic"))
    cells, url = [qw.cell_key(req)], f"sqlite:///{tmp_path / 'queue.db'}"
    name = study_name("exp", "abc123", cells)
    queue = CellQueue.open(url, name, cells, heartbeat=1, grace=3)
    other = CellQueue.open(url, name, cells, heartbeat=1, grace=3)
    retaken, reports = [], []

    def cut_off(trial_id):
        raise ConnectionError("the database is out of reach")

    def training(request, data):
        request.on_start("run-of-the-cut-off-worker")
        queue.storage.record_heartbeat = cut_off  # its heartbeat thread's stamps fail from now on
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            request.progress({"epoch": 1})
            if not retaken and (claim := other.claim()) is not None:  # another worker, polling for cells
                retaken.append(claim)
            time.sleep(0.5)
        raise AssertionError("the worker trained on after losing its cell")

    monkeypatch.setattr(qw, "run_one", training)
    with pytest.raises(qw.LeaseLost, match=rf"^{re.escape(cells[0])}: this worker lost its lease .* 3 s"):
        qw.work([req], None, queue, reports.append)
    assert [r["event"] for r in reports] == ["claimed"]  # neither finished nor marked failed
    assert [(c.cell, c.run_id, c.takeover) for c in retaken] == [(cells[0], "run-of-the-cut-off-worker", True)]
    counts = other.counts()
    assert (counts.running, counts.failed) == (1, {})  # the cell is the other worker's now, not failed


def test_lease_checked_passes_progress_on_until_the_lease_is_lost():
    import threading

    from bench.queue_worker import LeaseLost, lease_checked

    shown, lost = [], threading.Event()
    report = lease_checked(shown.append, lost, "baseline_cnn+hybrid/s1", 120)
    report({"epoch": 1})
    lost.set()
    with pytest.raises(LeaseLost, match="no heartbeat reached the queue for 120 s"):
        report({"epoch": 2})
    assert shown == [{"epoch": 1}]
    lease_checked(None, threading.Event(), "c", 120)({"epoch": 1})  # no progress line: only the check
