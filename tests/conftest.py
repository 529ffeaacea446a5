"""Shared fixtures: every test gets its own cache folder and working directory (so ./mlruns is
private), and tiny data written by the tests themselves."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from bench.data.synthetic import write_csv


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory):
    """A 600-face synthetic CSV in the Kaggle schema, written once per session."""
    return write_csv(tmp_path_factory.mktemp("synth") / "faces.csv.gz", 600, seed=1)


def pixels(value: int = 0, n: int = 2304) -> str:
    return " ".join([str(value)] * n)


def write_rows(path, rows, header="emotion,pixels,Usage"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
