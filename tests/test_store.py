"""Which tracking store a command uses, read without MLflow."""

from pathlib import Path

from bench import store


def test_sqlite_path_reads_relative_absolute_and_memory_uris():
    assert store.sqlite_path("sqlite:///mlruns/mlflow.db") == Path("mlruns/mlflow.db")
    assert store.sqlite_path("sqlite:////abs/x.db?timeout=5") == Path("/abs/x.db")
    assert store.sqlite_path("sqlite:///:memory:") is None
    assert store.sqlite_path("http://localhost:5000") is None
