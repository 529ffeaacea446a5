"""Process-wide TensorFlow settings that must be chosen before TensorFlow is imported.

oneDNN's custom operations are off by default in TensorFlow 2.21 on this project's AMD EPYC CPUs
(TensorFlow enables them by default only on CPUs it recognises). Turning them on was measured to make
training 2-3x faster here for the baseline CNN, ResNet50, EfficientNetB3 and Xception, and ~0.8x for
MobileNetV3Small (benchmarks/cpu_speed.py, figures in benchmarks/RESULTS.md). bench therefore turns
them on unless the user has already chosen: ``TF_ENABLE_ONEDNN_OPTS=0 bench run ...`` still wins.
"""

from __future__ import annotations

import os

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def configure_tensorflow_environment() -> None:
    """Set bench's defaults for variables TensorFlow reads at import time, keeping any the user set."""
    os.environ.setdefault(ONEDNN_VARIABLE, "1")


def onednn_enabled() -> bool:
    """Whether this process runs (or will run) TensorFlow with oneDNN's custom operations."""
    return os.environ.get(ONEDNN_VARIABLE, "0").strip().lower() in {"1", "true", "yes", "on"}
