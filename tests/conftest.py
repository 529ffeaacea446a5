"""Shared fixtures: every test gets its own cache folder and working directory (so ./mlruns is
private), and tiny data written by the tests themselves.

The synthetic faces of each ``synthetic:N:SEED`` (8-70 s to draw on the shared 2-core machine) are drawn
once per session (``isolated`` below): they are a pure function of N and SEED, not what a test checks.
(MLflow's ~50 table migrations per new ./mlruns store stay paid by every test: skipping them would mean
patching a private MLflow function.)"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from bench.data.synthetic import write_csv

SYNTHETIC_FILES = "synthetic-n*-s*.csv.gz"  # bench.data.synthetic's cache files, named by N and SEED


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory):
    """The session's folder of what tests share: the synthetic CSVs drawn so far."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(autouse=True)
def isolated(tmp_path, tmp_path_factory, monkeypatch, shared_store):
    """A cache folder and working directory of the test's own. The cache starts with the synthetic CSVs
    earlier tests drew (hard links: bench replaces a cache file, never writes into one), so subprocesses
    started with this cache find them too; the ones this test drew are kept for the next tests. It lies
    outside ``tmp_path``, which stays the test's own empty working directory (tests check what a command
    left there)."""
    cache = tmp_path_factory.mktemp("cache")
    for path in shared_store.glob(SYNTHETIC_FILES):
        _link_or_copy(path, cache / path.name)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for path in cache.glob(SYNTHETIC_FILES):
        if not (shared_store / path.name).exists():
            _link_or_copy(path, shared_store / path.name)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link, or a copy where the file system has none."""
    import shutil

    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


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


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """``benchmarks/NAME.py`` as a module (the scripts are not a package), executed as when it runs: its
    folder on ``sys.path`` while it loads (scripts import their neighbours), and the module registered in
    ``sys.modules`` under its file name (dataclasses look their module up there). ``NAME`` may name a
    subfolder: ``investigations/augment_sharpness`` for a one-off investigation's script."""
    path = BENCHMARKS / f"{name}.py"
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1, started as the postgres user (it refuses root);
    skips cleanly where no server can be started. Shared by the tune and the run-queue tests."""
    import glob
    import shutil

    pytest.importorskip("psycopg")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or shutil.which("su") is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench-pg-", dir="/tmp"))  # pytest's own tmp root is private to root
    os.chmod(folder, 0o777)
    import socket

    with socket.socket() as probe:  # a free port: several sessions may start servers at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = (
        f"{bins[-1]}/initdb -D {folder}/data -A trust -U postgres >/dev/null && {bins[-1]}/pg_ctl -D "
        f"{folder}/data -o '-p {port} -k {folder} -c listen_addresses=127.0.0.1' -l {folder}/log -w start"
    )
    as_postgres = ["su", "postgres", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    started = subprocess.run([*as_postgres, start], capture_output=True, text=True, timeout=120, cwd=folder)
    if started.returncode != 0:
        pytest.skip(f"PostgreSQL could not start: {started.stderr.strip()[:200]}")
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run(
        [*as_postgres, f"{bins[-1]}/pg_ctl -D {folder}/data stop -m fast"], capture_output=True, timeout=60, cwd=folder
    )
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained baseline_cnn + linear saved as .keras: the model file of the predict and live tests."""
    import keras

    from bench.models import build_model

    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path
