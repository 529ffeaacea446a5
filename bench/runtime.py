"""Process-wide TensorFlow settings that must be chosen before TensorFlow is imported, and the
environment tags (versions, commit, hardware) every run records.

oneDNN's custom operations are off by default in TensorFlow 2.21 on this project's AMD EPYC CPUs
(TensorFlow enables them by default only on CPUs it recognises). Turning them on was measured to make
training 2-3x faster here for the baseline CNN, ResNet50, EfficientNetB3 and Xception, and ~0.8x for
MobileNetV3Small (benchmarks/cpu_speed.py, figures in benchmarks/RESULTS.md#evidence-cpu-onednn-precision).
bench therefore turns them on unless the user has already chosen: ``TF_ENABLE_ONEDNN_OPTS=0 bench run ...`` still wins.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from pathlib import Path

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def configure_tensorflow_environment() -> None:
    """Set bench's defaults for variables TensorFlow reads at import time, keeping any the user set."""
    os.environ.setdefault(ONEDNN_VARIABLE, "1")


def onednn_enabled() -> bool:
    """Whether this process runs (or will run) TensorFlow with oneDNN's custom operations."""
    return os.environ.get(ONEDNN_VARIABLE, "0").strip().lower() in {"1", "true", "yes", "on"}


def set_threads(intra: int = 0, inter: int = 0) -> None:
    """Set TensorFlow's intra-op and inter-op thread counts (0 = TensorFlow's default), through
    ``tf.config.threading``.

    TensorFlow reads them once, when its runtime starts (the first op, not the import), and refuses a
    change after that; bench calls this before seeding and building a run's model
    (:func:`bench.train.build_for_recipe`), the first thing that runs an op. Raises a one-line
    :class:`BenchError` when the runtime already started with other counts (a second ``bench tune`` trial
    asking for different ones), 0 included: TensorFlow's getters read 0 for its default, so a 0 asked
    after it started with 2 would otherwise train on 2 while the run logs 0. Also raises when the Keras
    backend is not TensorFlow and a count is asked for."""
    from bench.backend import backend_name
    from bench.errors import BenchError

    if backend_name() != "tensorflow":
        if intra or inter:
            raise BenchError(
                f"run.threads_intra / run.threads_inter set TensorFlow's threads, but the Keras backend is "
                f"{backend_name()}; set both to 0"
            )
        return
    if not (intra or inter) and "tensorflow" not in sys.modules:
        return  # not even imported: nothing but its defaults can be in force
    import tensorflow as tf

    threading = tf.config.threading
    for key, value, setter, getter in (
        ("intra", intra, threading.set_intra_op_parallelism_threads, threading.get_intra_op_parallelism_threads),
        ("inter", inter, threading.set_inter_op_parallelism_threads, threading.get_inter_op_parallelism_threads),
    ):
        if getter() == value:
            continue
        try:
            setter(value)  # 0 before the runtime starts: back to TensorFlow's default
        except RuntimeError as exc:  # "... cannot be modified after initialization"
            raise BenchError(
                f"run.threads_{key} = {value}: TensorFlow already started in this process with "
                f"{getter() or 'its default'} {key}-op threads and cannot change them; give every run in one "
                "process the same thread counts, or run this one in its own bench command"
            ) from exc


def import_tensorflow_quietly(verbose: bool = False) -> None:
    """Import TensorFlow with the process's stderr (fd 2) sent to /dev/null, unless ``verbose``.

    TensorFlow's C++ start-up lines (absl's "before InitializeLog", oneDNN on, no CUDA drivers) are
    written before ``TF_CPP_MIN_LOG_LEVEL`` is read, once per shared library, so they appear twice; no
    user can act on them. A failed import still raises its Python exception."""
    if verbose or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def environment_tags(precision: str) -> dict[str, str]:
    """Library versions, the Keras backend, git commit and hardware, so a run says where it came from."""
    import keras
    import numpy

    from bench.backend import accelerators, backend_name, backend_version

    gpus = accelerators()
    tags = {
        "bench.version": __import__("bench").__version__,
        "bench.backend": backend_name(),
        backend_name(): backend_version(),
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        # read from the installed metadata, not imported: only bench.tracking imports mlflow, and the
        # GPU check (benchmarks/device_check.py) runs where neither may be installed
        "sklearn": _installed_version("scikit-learn"),
        "mlflow": _installed_version("mlflow"),
        "python": platform.python_version(),
        "hardware": ("GPU: " + ", ".join(gpus)) if gpus else f"CPU: {_cpu_model()} x{os.cpu_count()}",
        "precision": precision,
        "onednn": str(onednn_enabled() and backend_name() == "tensorflow").lower(),
    }
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
        if commit:
            tags["git_commit"] = commit
    return tags


def _installed_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
