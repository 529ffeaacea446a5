"""TensorFlow start-up settings and the quiet import."""

import os
import subprocess
import sys

import pytest

QUIET = "from bench.runtime import import_tensorflow_quietly as q; q()"
PLAIN = "import bench, tensorflow"


def _import(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL")}
    code += "; import sys; print('tensorflow' in sys.modules)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_quiet_tensorflow_import_prints_no_start_up_lines():
    loud = _import(PLAIN)  # the control: a plain import prints start-up lines on this project's machines
    assert loud.stdout.strip() == "True"
    if not loud.stderr.strip():
        pytest.skip("a plain TensorFlow import printed nothing here, so there is nothing to silence")
    quiet = _import(QUIET)
    assert quiet.stdout.strip() == "True" and quiet.stderr.strip() == "", quiet.stderr


def test_a_missing_distribution_is_tagged_not_installed():
    from bench.runtime import _installed_version

    assert _installed_version("no-such-distribution-bench") == "not installed"
    assert _installed_version("numpy")[0].isdigit()


THREADS = """
import tensorflow as tf
from bench.config import Recipe
from bench.recipe_load import from_dict
from bench.errors import BenchError
from bench.runtime import set_threads
from bench.train import build_for_recipe

threading = tf.config.threading
counts = lambda: print(threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
set_threads(3, 3)
set_threads(0, 0)  # before TensorFlow starts: back to its defaults
counts()
tf.config.list_physical_devices("GPU")  # as `bench run` asks before building: TensorFlow not started yet
recipe = from_dict(Recipe, {"model": {"backbone": "baseline_cnn", "head": "linear"},
                            "run": {"threads_intra": 1, "threads_inter": 2}})
build_for_recipe(recipe)[0](tf.zeros((1, 48, 48, 1)))  # runs ops: TensorFlow has started
counts()
set_threads(1, 2)  # the same counts again (a second run in one process): fine
for intra, inter in ((3, 2), (1, 0), (0, 0)):  # 0 is TensorFlow's default, not what is in force here
    try:
        set_threads(intra, inter)
    except BenchError as exc:
        print(exc)
"""

DEFAULT_THREADS = """
import tensorflow as tf
from bench.errors import BenchError
from bench.runtime import set_threads

tf.zeros(1) + 1  # TensorFlow starts with its default thread counts
set_threads(0, 0)  # those asked for again: fine
try:
    set_threads(0, 2)
except BenchError as exc:
    print(exc)
"""


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()


def test_thread_counts_apply_before_tensorflow_starts_and_a_late_change_is_one_line():
    lines = _run(THREADS)
    assert lines[-5:-3] == ["0 0", "1 2"]
    late = "TensorFlow already started in this process with"
    assert lines[-3].startswith(f"run.threads_intra = 3: {late} 1 intra-op threads and cannot change them; give")
    assert lines[-2].startswith(f"run.threads_inter = 0: {late} 2 inter-op threads")
    assert lines[-1].startswith(f"run.threads_intra = 0: {late} 1 intra-op threads")


def test_asking_for_the_default_counts_after_tensorflow_started_with_them_is_fine():
    assert _run(DEFAULT_THREADS)[-1].startswith(
        "run.threads_inter = 2: TensorFlow already started in this process with its default inter-op threads"
    )


def test_thread_counts_need_the_tensorflow_backend(monkeypatch):
    from bench.errors import BenchError
    from bench.runtime import set_threads

    monkeypatch.setattr("bench.backend.backend_name", lambda: "jax")
    set_threads(0, 0)  # nothing asked: fine under any backend
    with pytest.raises(BenchError, match="the Keras backend is jax; set both to 0"):
        set_threads(2, 1)
