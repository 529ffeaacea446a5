"""The one backend-specific piece of ``bench explain``: the gradient of a function with respect to its input.

Keras 3 offers no backend-neutral gradient API (``keras.ops`` has no ``grad``; each backend trains through
its own autodiff in its ``train_step``), so this function has one short branch per backend:
``tf.GradientTape``, ``jax.grad`` and torch autograd. Everything else in :mod:`bench.explain` is
``keras.ops`` and NumPy.
"""

from __future__ import annotations

import numpy as np


def input_gradient(fn, x: np.ndarray) -> np.ndarray:
    """``d sum(fn(x)) / dx`` as a float32 NumPy array shaped like ``x``.

    Args:
        fn: a function of one tensor built from Keras layers / ``keras.ops`` (e.g. a head sub-model called
            with ``training=False``), returning one score per sample, ``(batch,)``.
        x: the input, e.g. a backbone feature map ``(batch, H, W, C)``.

    Summing over the batch gives each sample's own gradient because ``fn`` scores every sample from that
    sample alone (no batch statistics at inference).
    """
    import keras

    x = np.asarray(x, dtype=np.float32)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tensor = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            total = tf.reduce_sum(tf.cast(fn(tensor), tf.float32))
        return np.asarray(tape.gradient(total, tensor), dtype=np.float32)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        # jit: one compiled program instead of dispatching (and compiling) every op of the head on its own
        gradient = jax.jit(jax.grad(lambda v: jnp.sum(fn(v).astype(jnp.float32))))
        return np.asarray(gradient(jnp.asarray(x)), dtype=np.float32)
    if backend == "torch":
        tensor = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        fn(tensor).float().sum().backward()
        return tensor.grad.detach().cpu().numpy().astype(np.float32)
    raise ValueError(f"no gradient for the Keras backend {backend!r}; use tensorflow, jax or torch")
