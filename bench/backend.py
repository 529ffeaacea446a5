"""The one place bench asks which Keras backend runs it (TensorFlow, JAX or PyTorch) and what differs.

TensorFlow stays the default. Under JAX or PyTorch nothing on the training, evaluation, profiling or
prediction path imports TensorFlow: the input stream is :class:`bench.data.batches.ArrayBatches`
instead of tf.data, and compiled inference goes through Keras (``predict_on_batch``) instead of
``tf.function``. TFLite export and FLOP counting still need TensorFlow.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")


def backend_name() -> str:
    """The Keras backend this process runs (or will run once Keras is imported).

    Read the way Keras reads it (``KERAS_BACKEND``, then ``$KERAS_HOME/keras.json``) while Keras is not
    imported yet, so ``bench --help`` and the TensorFlow-only quiet import stay cheap."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def is_tensorflow() -> bool:
    return backend_name() == "tensorflow"


def backend_version() -> str:
    """The version of the backend's own library (tensorflow, jax or torch)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(backend_name())
    except PackageNotFoundError:
        return "unknown"


def accelerators() -> list[str]:
    """Names of the GPUs the backend sees; empty on a CPU-only machine."""
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        return [g.name for g in tf.config.list_physical_devices("GPU")]
    if name == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    if name == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def inference_function(model):
    """A compiled ``x (numpy float32) -> probabilities (numpy)`` call of ``model`` in inference mode.

    Under TensorFlow a ``tf.function`` with an unknown batch dimension (one trace for every batch
    size); elsewhere Keras' ``predict_on_batch``, which compiles the predict step once per input shape
    (jax.jit) without ``predict``'s per-call iterator and callbacks."""
    import numpy as np

    if is_tensorflow():
        import tensorflow as tf

        call = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)],
            reduce_retracing=True,
        )
        return lambda x: np.asarray(call(np.asarray(x, np.float32)))
    return lambda x: np.asarray(model.predict_on_batch(np.asarray(x, np.float32)))
