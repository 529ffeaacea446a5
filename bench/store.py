"""Which tracking store a command uses and whether it will open: its URI (``--tracking-uri`` >
``MLFLOW_TRACKING_URI`` > ./mlruns), a mistyped scheme, a SQLite file that is missing, unreadable,
locked or in a folder that takes no new files. All checked without importing MLflow.

Why apart from :mod:`bench.tracking` (the only module that imports mlflow): commands check the store
before they load TensorFlow, MLflow and the data, so a bad ``--tracking-uri`` fails in a second."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bench.errors import BenchError, probe_folder

DEFAULT_DIR = "mlruns"


def default_uri() -> str:
    return f"sqlite:///{Path(DEFAULT_DIR).resolve() / 'mlflow.db'}"


def resolve_uri(uri: str | None) -> str:
    """``uri`` > ``$MLFLOW_TRACKING_URI`` > the local SQLite store under ./mlruns."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


LOCKED = "database is locked: another process holds it; retry when it is done, or use a tracking server"


def is_locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc)


STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks", "databricks-uc", "uc")
"""The URI schemes MLflow opens a tracking store for (``postgresql+psycopg`` names a driver of one)."""
URI_FIX = "fix --tracking-uri (or MLFLOW_TRACKING_URI)"


def check_scheme(uri: str) -> None:
    """A mistyped scheme (``sqlit:///...``) is one line naming the scheme meant, not MLflow's traceback
    about its model registry."""
    import difflib
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme.lower()
    if not scheme or scheme.split("+", 1)[0] in STORE_SCHEMES or len(scheme) == 1:  # a path, C:\ on Windows
        return
    close = difflib.get_close_matches(scheme, STORE_SCHEMES, n=1)
    meant = f"; did you mean {close[0]}{uri[len(scheme) :]}?" if close else ""
    raise BenchError(
        f"the tracking store URI {uri} has an unknown scheme '{scheme}'{meant} "
        f"(use sqlite:///PATH.db, http(s)://HOST:PORT, postgresql://...): {URI_FIX}"
    )


def store_unreachable(uri: str, exc: Exception) -> BenchError:
    """The one line for a store that did not answer: the cause (``Connection refused``) and the fix."""
    import re

    text = str(exc)
    cause = re.search(r"\[Errno -?\d+\] ([^\"')(]+)", text)
    detail = cause.group(1).strip() if cause else (text.splitlines() or [type(exc).__name__])[0][:200]
    return BenchError(
        f"cannot reach the MLflow tracking store {uri} ({detail}): start the tracking server or {URI_FIX}"
    )


def check_store(uri: str | None) -> None:
    """The checks :func:`connect` makes, without importing mlflow or creating anything: commands call it
    before loading TensorFlow and data, so a bad --tracking-uri fails in a second, not after them."""
    resolved = resolve_uri(uri)
    check_scheme(resolved)
    if resolved != default_uri():  # the default folder is created on connect
        check_sqlite_store(resolved, create=True)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory databases)."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(raw) if raw and raw != ":memory:" else None


def check_sqlite_store(uri: str, *, create: bool) -> None:
    """Fail in milliseconds, with the fix, where MLflow would retry for minutes or quietly make a new
    store: a missing or unwritable folder, a file that is not a SQLite database, and (``create=False``)
    a store that does not exist: a typo in a read-only command must not leave an empty store behind."""
    import sqlite3

    path = sqlite_path(uri)
    if path is None:
        return
    if not path.exists():
        if not create:
            raise BenchError(
                f"no MLflow tracking store at {path}: check --tracking-uri (or MLFLOW_TRACKING_URI), "
                "or run `bench run` first"
            )
        if not path.parent.is_dir():
            raise BenchError(f"the folder of the tracking store {path} does not exist; create it or fix --tracking-uri")
    elif not path.is_file():
        raise BenchError(f"the tracking store {path} is not a file; fix --tracking-uri")
    else:
        try:
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
                db.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            if is_locked(exc):
                raise BenchError(f"cannot open the tracking store {path}: {LOCKED}") from exc
            raise BenchError(
                f"cannot open the tracking store {path}: {exc}; fix --tracking-uri or restore the file"
            ) from exc
    if create:  # SQLite writes a journal next to the database, so the folder itself must take new files
        try:
            probe_folder(path.parent)
        except OSError as exc:
            raise BenchError(
                f"cannot write the tracking store {path}: its folder does not take new files "
                f"({exc.strerror or exc}); choose a writable --tracking-uri"
            ) from exc
