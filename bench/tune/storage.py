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
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=STALE_SECONDS, **callback
        )
    if storage.engine.dialect.name == "sqlite":
        serialize_sqlite(storage.engine)  # two workers must never pop one enqueued trial (the baseline) both
    return storage


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


def serialize_sqlite(engine) -> None:
    """Make SQLite's claims atomic (a matrix cell, a tuning trial). SQLite ignores ``SELECT ... FOR
    UPDATE``, and Python's sqlite3 opens a transaction only before the first write, so two workers could
    both read a cell WAITING and both set it RUNNING (measured: 3 processes on 12 cells claimed some
    twice). SQLAlchemy's documented recipe for pysqlite ("Serializable isolation / Savepoints /
    Transactional DDL") has every transaction begin with ``BEGIN IMMEDIATE``, which takes the database's
    write lock first: claims, heartbeats and take-overs then run one at a time (each a few milliseconds),
    waiting up to 60 s for the lock. PostgreSQL and MySQL lock the row (``FOR UPDATE``) and need none of
    this."""
    import sqlalchemy

    @sqlalchemy.event.listens_for(engine, "connect")
    def _manual_transactions(dbapi_connection, connection_record) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 emits no BEGIN of its own
        dbapi_connection.execute("PRAGMA busy_timeout = 60000")

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners (Optuna's schema check) are not reused
