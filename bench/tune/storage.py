"""Where a study lives: the Optuna storage, with heartbeats so that a dead worker's trials are failed and
retried, and the checks that keep it apart from the MLflow store.

Why apart from :mod:`bench.tune.study`: the storage is set up once per worker and outlives every
study run in it; a study only opens it."""

from __future__ import annotations

import warnings
from pathlib import Path

from bench.errors import BenchError
from bench.store import DEFAULT_DIR

HEARTBEAT_SECONDS = 10  # a live worker records each running trial's heartbeat this often
STALE_SECONDS = 60  # a running trial without a heartbeat this long belongs to a dead worker: failed, retried once


def default_storage() -> str:
    Path(DEFAULT_DIR).mkdir(exist_ok=True)
    return f"sqlite:///{Path(DEFAULT_DIR).resolve() / 'optuna.db'}"


def open_storage(url: str):
    """The Optuna storage at ``url``, with heartbeats: a trial whose worker died (SIGKILL, a lost machine)
    stays RUNNING for ever otherwise and counts as running for every later worker; with them it is failed
    after :data:`STALE_SECONDS` without a heartbeat and queued once more with the same values."""
    import optuna

    check_storage(url)
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    with warnings.catch_warnings():  # the heartbeat arguments and the retry callback are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if retry is not None:  # optuna >= 5
            callback = {"heartbeat_stale_trial_callback": retry(max_retry=1)}
        else:
            callback = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=STALE_SECONDS, **callback
        )


def fail_stale(study) -> None:
    """Fail (and queue again) the study's running trials whose worker stopped sending heartbeats."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def check_storage(url: str, option: str = "--storage") -> None:
    """A one-line error, before Optuna touches it, when ``url`` is an MLflow tracking database: Optuna
    reads MLflow's ``alembic_version`` as a newer Optuna schema ("pip install -U optuna") and adds its
    own tables beside MLflow's. A database that cannot be inspected is left to Optuna to report."""
    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or ":memory:").is_file():
            return  # a new file (or memory): inspecting would create it
        engine = sqlalchemy.create_engine(parsed)
        try:
            tables = set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception:
        return
    if {"experiments", "runs"} <= tables:
        raise BenchError(
            f"{option} {parsed.render_as_string(hide_password=True)} is an MLflow tracking database (it holds "
            f"MLflow's experiments and runs tables); give Optuna a database of its own, e.g. {option} "
            f"sqlite:///{Path(DEFAULT_DIR) / 'optuna.db'}"
        )
