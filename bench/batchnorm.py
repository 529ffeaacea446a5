"""BatchNorm as TensorFlow's one fused kernel, and the swap that puts it into a backbone (``model.batchnorm``).

Keras 3 runs ``BatchNormalization`` on TensorFlow as separate mean, variance and normalise ops; BatchNorm
is 38 % of baseline_cnn's op time and 54 % of mini_xception's, and a bare CNN's training step took 0.71x
as long with the fused kernel (benchmarks/LOG.md#log-speed-ratios). The fused layer
is a ``BatchNormalization`` with the same config and the same four variables, so weights move between the
two by ``get_weights``/``set_weights`` and a saved model still loads (and runs Keras' own path) under JAX
or PyTorch: this is the one bench layer that calls ``tf.*``, and only where TensorFlow runs it.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from bench.errors import BenchError

BATCHNORMS = ("keras", "fused", "auto")
"""``model.batchnorm``: Keras' layer, TensorFlow's fused kernel, or ``auto`` (:func:`resolve_batchnorm`)."""
BATCHNORM_STATS = ("moving", "recomputed")
"""``model.batchnorm_stats``: Keras' moving averages over the training batches as they trained, or
statistics recomputed after training on the un-augmented training images (:func:`recompute_statistics`)."""

RECOMPUTE_BATCH = 256
"""Images per forward pass when recomputing statistics (the measured setting; benchmarks/LOG.md#log-batchnorm-stats)."""

_MIN_EPSILON = 1.001e-5
"""cuDNN's fused kernel rejects smaller epsilons; below it the layer keeps Keras' path."""


@keras.saving.register_keras_serializable(package="bench")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by ``tf.compat.v1.nn.fused_batch_norm`` where it can be.

    Fused: TensorFlow backend, 4-D channels-last input normalised over the last axis, float16, bfloat16 or
    float32 compute (the kernel takes all three on CPU, statistics in float32), no mask, ``center`` and
    ``scale`` on, no renorm, not synchronized, epsilon >= 1.001e-5. Anything else runs Keras' own ``call``.
    Training updates the moving statistics exactly as Keras does (``moving * momentum + batch * (1 -
    momentum)``, with the biased batch variance); inference uses the moving statistics. Same arguments,
    shapes and variables as ``BatchNormalization``.

    Example:
    >>> layer = FusedBatchNormalization(momentum=0.9)
    >>> layer(np.zeros((2, 4, 4, 8), "float32"), training=True).shape
    (2, 4, 4, 8)
    """

    def _fusable(self, inputs, mask) -> bool:
        from bench.backend import is_tensorflow

        return (
            is_tensorflow()
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.center
            and self.scale
            and not self.renorm
            and not self.synchronized
            and self.epsilon >= _MIN_EPSILON
            and keras.backend.standardize_dtype(inputs.dtype) in ("float16", "bfloat16", "float32")
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        gamma, beta = tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32")
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            # The kernel returns the batch variance with Bessel's correction; Keras averages the biased one.
            n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], "float32")
            variance = variance * ((n - 1.0) / tf.maximum(n, 1.0))
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon,
                is_training=False,
            )
        return tf.cast(outputs, self.compute_dtype)


def check_batchnorm(batchnorm: str) -> str:
    """``batchnorm`` if this process can run it: ``fused`` needs the TensorFlow backend."""
    from bench.backend import is_tensorflow

    if batchnorm not in BATCHNORMS:
        raise BenchError(f"model.batchnorm must be one of {', '.join(BATCHNORMS)}; received {batchnorm!r}")
    if batchnorm == "fused" and not is_tensorflow():
        raise BenchError('fused BatchNorm needs KERAS_BACKEND=tensorflow; set model.batchnorm = "keras" or "auto"')
    return batchnorm


def resolve_batchnorm(batchnorm: str) -> str:
    """The kernel a model is built with: ``auto`` is ``fused`` where TensorFlow runs the model and ``keras``
    under JAX or PyTorch (where Keras' layer is the only one); ``keras`` and ``fused`` as asked (checked by
    :func:`check_batchnorm`).

    Why ``auto`` exists: the fused kernel computes the same function on the same variables (tests/
    test_batchnorm.py), so a recipe may ask for the faster kernel wherever it exists without tying itself to
    one backend; the recipe hash leaves ``model.batchnorm`` out for that reason (``SPEED_FIELDS`` in
    :mod:`bench.recipe_io`)."""
    from bench.backend import is_tensorflow

    if check_batchnorm(batchnorm) == "auto":
        return "fused" if is_tensorflow() else "keras"
    return batchnorm


def fuse_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of ``model`` (nested models included) with every ``BatchNormalization`` a
    :class:`FusedBatchNormalization` of the same config, and every weight copied.

    A copy rather than an in-place change: Keras offers no public way to swap a layer inside a
    functional graph, and ``keras.models.clone_model`` keeps the layer order, so ``set_weights`` maps
    one weight list onto the other."""

    def clone(layer):
        if type(layer) is keras.layers.BatchNormalization:
            return FusedBatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    fused = keras.models.clone_model(model, clone_function=clone, recursive=True)
    fused.set_weights(model.get_weights())
    return fused


def recompute_statistics(
    model: keras.Model,
    images,
    batch_size: int = RECOMPUTE_BATCH,
    seed: int = 0,
    transform: Callable | None = None,
) -> int:
    """Set the moving mean and variance of every trainable ``BatchNormalization`` in ``model`` (nested
    models included) to the average of its batch statistics over all of ``images``, the weights untouched;
    returns how many layers were set.

    Args:
        model: a bench model; it takes raw 0-255 faces.
        images: the faces, ``(N, H, W)`` gray or ``(N, H, W, C)``, raw 0-255 like the model's input.
        batch_size: images per forward pass (all of them at once when there are fewer).
        seed: the shuffle's seed. The images are read in a seeded random order so that every batch mixes
            the classes: an image folder's faces come grouped by class, and statistics from one-class
            batches are not the population's.
        transform: applied to each batch before the model, e.g. an augmenter (``benchmarks/
            investigations/batchnorm_stats.py`` measures statistics on augmented faces that way); None for the faces as
            given.

    Why: Keras' moving averages follow the training batches, which are augmented when the recipe augments,
    while evaluation and inference see clean faces. mini_xception trained with its authors' augmentation
    (rotations, shifts, zooms, nearest fill) scored 0.613 PrivateTest accuracy with those averages and
    0.646 with statistics recomputed on the clean training images, its weights unchanged; recomputing on
    augmented batches gained nothing (benchmarks/RESULTS.md#evidence-arriaga-batchnorm-stats). Re-estimating
    BatchNorm statistics under the evaluation's preprocessing is the remedy of FixRes (Touvron et al.,
    2019) and of "precise BN" (Wu & Johnson, 2021).

    How: one forward pass in training mode per batch (each BatchNorm normalises with its batch's own
    statistics, as in training) with momentum 0, so each call leaves that batch's mean and biased variance
    in the moving variables — Keras' own update, so it holds on every backend and for
    :class:`FusedBatchNormalization`; their batch-size-weighted means are written back. Layers that are
    not trainable (a frozen pretrained backbone's, which run in inference mode) keep theirs. If a pass
    fails, every layer gets its statistics from before the call back, and the error propagates.
    """
    import numpy as np

    from bench.backbones._keras_apps import all_layers

    norms = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    norms = [layer for layer in norms if layer.trainable]
    if not norms or len(images) == 0:
        return 0
    count = len(images)
    order = np.random.default_rng(seed).permutation(count)
    # Every image counts (sizes differ by one at most). Unequal batch sizes are safe here: these are
    # forward passes, and the oneDNN crash on a smaller batch needs a training step
    # (benchmarks/LOG.md#log-onednn-crashes); mini_xception, fused or not, ran forward at 256, 255, 5 and 1 images.
    batches = np.array_split(order, -(-count // min(batch_size, count)))
    before = [(np.array(layer.moving_mean), np.array(layer.moving_variance)) for layer in norms]
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)] for layer in norms]
    momenta = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 0.0
        for index in batches:
            faces = np.asarray(images[np.sort(index)], "float32")
            faces = faces[..., None] if faces.ndim == 3 else faces
            model(transform(faces) if transform else faces, training=True)
            for (mean, variance), layer in zip(sums, norms, strict=True):
                mean += len(index) * keras.ops.convert_to_numpy(layer.moving_mean)
                variance += len(index) * keras.ops.convert_to_numpy(layer.moving_variance)
    except BaseException:
        for (mean, variance), layer in zip(before, norms, strict=True):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum
    for (mean, variance), layer in zip(sums, norms, strict=True):
        layer.moving_mean.assign((mean / count).astype(layer.moving_mean.dtype))
        layer.moving_variance.assign((variance / count).astype(layer.moving_variance.dtype))
    return len(norms)
