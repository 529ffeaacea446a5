"""MLflow glue: the only module that imports mlflow (which store, and whether it opens, is
:mod:`bench.store`'s; the names a run logs are :mod:`bench.run_record`'s).

Default store: ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts`` (MLflow 3
deprecates its plain file store). ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` take precedence.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from bench import interrupts
from bench.errors import BenchError, first_line
from bench.run_record import FAILURE_REASON_TAG, KIND_LEADERBOARD, KIND_TAG
from bench.store import (
    DEFAULT_DIR,
    LOCKED,
    check_scheme,
    check_sqlite_store,
    default_uri,
    is_locked,
    resolve_uri,
    store_unreachable,
)


def connect(uri: str | None = None, *, create: bool = True):
    """Point mlflow at the store and return its URI. ``create=False`` (read-only commands) needs the
    store to exist already; ``create=True`` makes the default ./mlruns folder, nothing else.

    A SQLite store is checked here first (see :func:`check_sqlite_store`), because MLflow retries an
    unopenable one 10 times with backoff (~100 s) before it reports anything."""
    import mlflow

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    resolved = resolve_uri(uri)
    check_scheme(resolved)
    if create and resolved == default_uri():
        Path(DEFAULT_DIR).mkdir(exist_ok=True)
    check_sqlite_store(resolved, create=create)
    _quiet_store_logs()
    mlflow.set_tracking_uri(resolved)
    return resolved


def _quiet_store_logs() -> None:
    """MLflow logs a full SQLAlchemy traceback (at ERROR) for every failed database call, then raises
    the same failure as an MlflowException, which bench reports in one line: the log is only noise
    before that line (a full disk, a locked database)."""
    import logging

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts").resolve().as_uri()
    return None


def ensure_experiment(name: str, uri: str, attempts: int = 3) -> str:
    """The experiment's id, created (with a local artifact folder for SQLite stores) if needed.

    Retried a few times: workers started together on a fresh SQLite store race to create its tables.
    """
    import time

    import mlflow

    for attempt in range(attempts):
        try:
            exp = mlflow.get_experiment_by_name(name)
            if exp is None:
                return mlflow.create_experiment(name, artifact_location=_artifact_root(uri))
            if exp.lifecycle_stage == "deleted":
                raise BenchError(f"experiment '{name}' is deleted; restore it in MLflow or pick another --experiment")
            return exp.experiment_id
        except BenchError:
            raise
        except Exception as exc:
            if attempt + 1 == attempts:
                cause = LOCKED if is_locked(exc) else first_line(exc)
                raise BenchError(f"cannot reach the MLflow tracking store {uri}: {cause}") from exc
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


class StoreError(BenchError):
    """The tracking store refused a write (full disk under a SQLite store, a locked database, a server
    error): the caller decides what is kept and how to continue; ``fix`` says what to do first."""

    def __init__(self, message: str, fix: str = "free space or fix permissions"):
        super().__init__(message)
        self.fix = fix


@contextlib.contextmanager
def _store_errors(what: str):
    """MLflow's failures as a :class:`StoreError`. A stop signal that arrived since the last call is
    raised first (:func:`bench.interrupts.check`): logging calls are the run's safe points."""
    from mlflow.exceptions import MlflowException

    interrupts.check()
    try:
        yield
    except MlflowException as exc:
        if is_locked(exc):
            raise StoreError(
                f"cannot log {what} to the tracking store: database is locked: another process holds it",
                fix="retry when that process is done, or use a tracking server",
            ) from exc
        raise StoreError(f"cannot log {what} to the tracking store: {first_line(exc)}") from exc


class TrackedRun:
    """A context manager around one MLflow run: FAILED on an exception, KILLED on Ctrl-C, with the
    reason as the ``failure_reason`` tag; nothing already logged is lost."""

    def __init__(
        self,
        experiment_id: str,
        run_name: str | None = None,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
        nested: bool = False,
    ):
        self.experiment_id, self.run_name, self.run_id = experiment_id, run_name, run_id
        self.tags, self.nested = tags or {}, nested

    def __enter__(self) -> TrackedRun:
        import mlflow

        with _store_errors("the start of the run"):
            self.run = mlflow.start_run(
                experiment_id=self.experiment_id,
                run_name=self.run_name,
                run_id=self.run_id,
                tags=self.tags,
                nested=self.nested,
            )
        self.run_id = self.run.info.run_id
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        import mlflow

        if exc_type is None:
            if FAILURE_REASON_TAG in self.run.data.tags:  # a resumed run: the old reason no longer holds
                with contextlib.suppress(Exception):  # a stale tag is no reason to fail a logged run
                    mlflow.MlflowClient().delete_tag(self.run_id, FAILURE_REASON_TAG)
            with _store_errors("the end of the run"):
                mlflow.end_run("FINISHED")
            return False
        status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        reason = interrupts.reason() if status == "KILLED" else f"{exc_type.__name__}: {exc}"
        # A store that failed the run may fail these too; the exception that ended the run is what to
        # report. A second Ctrl-C waits (held) so that the run is marked before the command ends.
        with interrupts.held(check_after=False):
            with contextlib.suppress(Exception):
                mlflow.set_tag(FAILURE_REASON_TAG, reason[:5000])
            with contextlib.suppress(Exception):
                mlflow.end_run(status)
        return False

    # -- logging helpers (all go to this run)
    def params(self, params: dict[str, Any]) -> None:
        import mlflow

        items = {k: (str(v)[:6000] if not isinstance(v, int | float | bool) else v) for k, v in params.items()}
        keys = list(items)
        for i in range(0, len(keys), 100):
            with _store_errors("params"):
                mlflow.log_params({k: items[k] for k in keys[i : i + 100]})

    def metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import math

        import mlflow

        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(float(v))}
        if clean:
            with _store_errors("metrics"):
                mlflow.log_metrics(clean, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        import mlflow

        with _store_errors("tags"):
            mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def artifact(self, path: Path, folder: str | None = None) -> None:
        """Copy a file into the run's artifacts; a local artifact store's failure stays an ``OSError``
        (it names the path), a remote one's becomes a :class:`StoreError`."""
        import mlflow

        with _store_errors(f"artifact {Path(path).name}"):
            mlflow.log_artifact(str(path), artifact_path=folder)

    def epoch_history(self, keys: tuple[str, ...]) -> dict[str, dict[int, float]]:
        """The per-epoch values this run logged so far, by key and epoch (also by earlier processes)."""
        import mlflow

        client = mlflow.MlflowClient()
        with _store_errors("nothing (reading the epoch history)"):
            return {key: {m.step: m.value for m in client.get_metric_history(self.run_id, key)} for key in keys}

    def epoch_callback(self):
        """Logs every epoch's train/val loss, accuracy, val macro-F1 and learning rate, stepped by the
        global epoch."""
        from bench.callbacks import EpochLogger

        return EpochLogger(lambda epoch, logs: self.metrics(logs, step=epoch))


def find_run(run_id: str):
    """The MLflow run with this id, or a one-line error: a run the store does not hold, or a store that
    did not answer (a server that is not listening is not a missing run)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise _unreachable(exc) from exc
        raise BenchError(
            f"no MLflow run '{run_id}' in {mlflow.get_tracking_uri()}: check the id "
            "(mlflow ui shows it) or --tracking-uri"
        ) from exc
    except Exception as exc:
        raise _unreachable(exc) from exc


def _unreachable(exc: Exception) -> BenchError:
    import mlflow

    uri = mlflow.get_tracking_uri()
    if is_locked(exc):
        return BenchError(f"cannot read the tracking store {uri}: {LOCKED}")
    return store_unreachable(uri, exc)


def experiment_name(experiment_id: str) -> str:
    import mlflow

    return mlflow.get_experiment(experiment_id).name


def download_artifact(run_id: str, path: str, dst: Path) -> Path:
    import mlflow

    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst)))
    except Exception as exc:
        raise BenchError(f"run {run_id} has no artifact '{path}': {first_line(exc)}") from exc


def ui_command(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        return f"mlflow ui --backend-store-uri {uri}"
    return f"open {uri} in a browser"


def search_runs(experiments: list[str], uri: str | None = None):
    """All runs of the named experiments as a pandas DataFrame (``params.*``, ``metrics.*``, ``tags.*``
    columns), leaderboard runs excluded; one-line errors for unknown experiments or an unreachable store.
    Read-only: a store that does not exist is an error, not created."""
    import mlflow

    resolved = connect(uri, create=False)
    ids = []
    for name in experiments:
        try:
            exp = mlflow.get_experiment_by_name(name)
        except Exception as exc:
            raise store_unreachable(resolved, exc) from exc
        if exp is None:
            known = [e.name for e in mlflow.search_experiments()]
            raise BenchError(
                f"no experiment '{name}' in {resolved}; known: {', '.join(known) or 'none'} "
                "(run `bench run ... --experiment NAME` first)"
            )
        ids.append(exp.experiment_id)
    frame = mlflow.search_runs(ids, output_format="pandas")
    kind = f"tags.{KIND_TAG}"
    if len(frame) and kind in frame.columns:
        frame = frame[frame[kind].fillna("") != KIND_LEADERBOARD]
    return frame


def latest_experiment(uri: str | None = None) -> str:
    """The experiment whose newest run started last: what ``bench compare`` shows when none is named."""
    import mlflow

    resolved = connect(uri, create=False)
    try:
        latest = mlflow.search_runs(search_all_experiments=True, max_results=1, order_by=["start_time DESC"])
    except Exception as exc:
        raise store_unreachable(resolved, exc) from exc
    if not len(latest):
        raise BenchError(f"no runs in {resolved} yet; run `bench run` first or fix --tracking-uri")
    return mlflow.get_experiment(latest["experiment_id"].iat[0]).name


def log_leaderboard(experiment: str, files: list[Path], metrics: dict[str, float], uri: str | None = None) -> str:
    """Log leaderboard files as artifacts of a ``leaderboard`` run in ``experiment``; returns its id."""
    resolved = connect(uri)
    with TrackedRun(
        ensure_experiment(experiment, resolved), run_name="leaderboard", tags={KIND_TAG: KIND_LEADERBOARD}
    ) as run:
        run.metrics(metrics)
        for path in files:
            run.artifact(path)
    return run.run_id


def set_run_status(run_id: str, status: str, reason: str | None = None) -> None:
    """Set a run's status from any process (e.g. a study's parent run shared by several workers); a
    status without a reason (RUNNING again, FINISHED) removes the reason an earlier stop left."""
    import mlflow

    client = mlflow.MlflowClient()
    if reason:
        client.set_tag(run_id, FAILURE_REASON_TAG, reason)
    else:
        _clear_failure_reason(client, run_id)
    client.update_run(run_id, status=status)


def _clear_failure_reason(client, run_id: str) -> None:
    if FAILURE_REASON_TAG in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, FAILURE_REASON_TAG)


def log_to_run(run_id: str, metrics: dict[str, float], params: dict[str, Any], files: list[Path]) -> None:
    """Add metrics, tags and artifacts to an existing run (params are logged as tags, since a rerun of a
    study may find a different best value) and mark it FINISHED."""
    import mlflow

    client = mlflow.MlflowClient()
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    for key, value in params.items():
        client.set_tag(run_id, key, str(value))
    for path in files:
        client.log_artifact(run_id, str(path))
    _clear_failure_reason(client, run_id)
    client.update_run(run_id, status="FINISHED")
