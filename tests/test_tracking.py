"""The MLflow glue's fault handling: stores that cannot be opened fail at once and read-only commands
never create one; a run that finishes loses the failure reason an earlier stop left."""

import time
from pathlib import Path

import pytest

from bench import tracking as trk
from bench.errors import BenchError


def test_read_only_connections_never_create_a_store(tmp_path):
    for uri in (f"sqlite:///{tmp_path}/typo/mlflow.db", f"sqlite:///{tmp_path}/nothere.db"):
        with pytest.raises(BenchError, match="no MLflow tracking store at .* check --tracking-uri"):
            trk.connect(uri, create=False)
    with pytest.raises(BenchError, match="no MLflow tracking store"):
        trk.connect(None, create=False)  # the default store under ./mlruns
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_unopenable_stores_fail_in_milliseconds(tmp_path):
    (tmp_path / "corrupt.db").write_text("not a database")
    (tmp_path / "file").write_text("")
    cases = {
        f"sqlite:///{tmp_path}/corrupt.db": "cannot open the tracking store",
        f"sqlite:///{tmp_path}/missing/mlflow.db": "does not exist; create it",
        f"sqlite:///{tmp_path}/file/mlflow.db": "does not exist; create it",  # a file where a folder should be
    }
    if Path("/proc").is_dir():  # refuses new files even to root
        cases["sqlite:////proc/bench-test.db"] = "its folder does not take new files"
    for uri, message in cases.items():
        tic = time.perf_counter()
        with pytest.raises(BenchError, match=message):
            trk.connect(uri)
        assert time.perf_counter() - tic < 15, (
            uri
        )  # MLflow alone would retry for ~100 s; bounds generous for a busy CI machine
    assert not (tmp_path / "missing").exists()


def test_a_read_only_store_folder_is_refused_for_writing(tmp_path):
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root: permission bits do not stop writes
            pytest.skip("running as root, a read-only folder still takes files (the /proc case covers it)")
        with pytest.raises(BenchError, match="does not take new files"):
            trk.connect(f"sqlite:///{folder}/mlflow.db")
    finally:
        folder.chmod(0o755)


def _tags(run_id):
    import mlflow

    return mlflow.MlflowClient().get_run(run_id).data.tags


def test_a_run_that_finishes_after_a_stop_loses_its_failure_reason():
    experiment = trk.ensure_experiment("reasons", trk.connect(None))
    with pytest.raises(KeyboardInterrupt), trk.TrackedRun(experiment, run_name="stopped") as run:
        raise KeyboardInterrupt
    assert _tags(run.run_id)["failure_reason"] == "interrupted (Ctrl-C)"
    with trk.TrackedRun(experiment, run_id=run.run_id):  # bench run --resume
        pass
    assert "failure_reason" not in _tags(run.run_id)
    trk.set_run_status(run.run_id, "KILLED", "interrupted")  # a study's parent run, stopped and rerun
    trk.set_run_status(run.run_id, "RUNNING")
    assert "failure_reason" not in _tags(run.run_id)
    trk.set_run_status(run.run_id, "KILLED", "interrupted")
    trk.log_to_run(run.run_id, {"best": 1.0}, {}, [])
    assert "failure_reason" not in _tags(run.run_id)


def test_store_refusals_become_store_errors(monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    experiment = trk.ensure_experiment("refusals", trk.connect(None))

    def full(*args, **kwargs):
        raise MlflowException("(sqlite3.OperationalError) database or disk is full")

    with trk.TrackedRun(experiment) as run:
        monkeypatch.setattr(mlflow, "log_metrics", full)
        with pytest.raises(trk.StoreError, match="cannot log metrics to the tracking store: .*disk is full"):
            run.metrics({"x": 1.0})
