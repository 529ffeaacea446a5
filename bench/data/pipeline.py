"""tf.data input pipelines: seeded shuffle, batched augmentation, one-hot labels (or soft targets),
per-sample weights."""

from __future__ import annotations

import numpy as np

from bench import NUM_CLASSES


def label_width(targets: np.ndarray | None, weights: np.ndarray | None) -> int:
    """How many classes a stream's one-hot labels need: the width of the soft targets or of the per-class
    weights (the data's class count), else FER2013's 7."""
    return next((a.shape[-1] for a in (targets, weights) if a is not None), NUM_CLASSES)


def oversample_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices that repeat minority-class samples until each class has ``fraction`` x the largest
    class's count (0 = every sample once)."""
    idx = np.arange(len(labels))
    if fraction <= 0:
        return idx
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    target = int(fraction * counts.max())
    extra = [rng.choice(np.flatnonzero(labels == c), target - n) for c, n in enumerate(counts) if 0 < n < target]
    return np.concatenate([idx, *extra]) if extra else idx


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    weights: np.ndarray | None = None,
    augmenter=None,
    mixer=None,
    shuffle: bool = False,
    seed: int = 0,
    oversample: float = 0.0,
    targets: np.ndarray | None = None,
    num_classes: int | None = None,
):
    """A ``tf.data.Dataset`` of ``(x, y[, sample_weight])`` batches; ``y`` is one-hot ``labels`` or ``targets``.

    Args:
        images: uint8 (N, 48, 48) or (N, 48, 48, 1).
        labels: int (N,): the class of each image (the majority label with soft targets); it picks the
            sample weight and drives oversampling.
        weights: per-class weights (K,) turned into per-sample weights; None for no weights.
        targets: float (N, K) soft targets (FER+ vote distributions) fed instead of one-hot labels.
        num_classes: K of the one-hot labels; default: the width of ``targets`` or ``weights``, else 7.
        augmenter: a Keras layer applied to each whole batch (float 0-255), or None.
        mixer: a :class:`bench.data.mixing.BatchMixer` applied after it (mixup/cutmix), or None.
        shuffle: reshuffle every epoch with ``seed``. A shuffled (training) stream also drops each pass's
            last, partial batch, so every training step has the same batch size: with oneDNN on,
            TensorFlow 2.21 crashes (SIGSEGV or ``free(): invalid size``) on the first training step of a
            smaller batch through depthwise-separable convolutions (mini_xception; reproduced by
            benchmarks/investigations/onednn_partial_batch.py). The images left out differ every pass.
        oversample: see :func:`oversample_indices`.

    The augmentation map runs on one thread on purpose: the Keras layers draw from a stateful seed
    generator, so parallel calls would race for seeds and break reproducibility, and on this 2-core
    machine a second augmentation thread only steals the core the model trains on. One thread still
    delivers ~5,600 augmented images/s (benchmarks/LOG.md#log-input-pipeline), over 5x the fastest model.
    """
    import tensorflow as tf

    if images.ndim == 3:
        images = images[..., None]
    index = oversample_indices(labels, oversample, seed) if shuffle else np.arange(len(labels))
    num_classes = num_classes or label_width(targets, weights)
    x = images[index]
    y = labels[index].astype(np.int32)
    parts = [x, y if targets is None else targets[index].astype(np.float32)]
    if weights is not None:
        parts.append(weights[y].astype(np.float32))
    ds = tf.data.Dataset.from_tensor_slices(tuple(parts))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=shuffle and len(y) >= batch_size)

    def transform(*batch):
        xb = tf.cast(batch[0], tf.float32)
        if augmenter is not None:
            xb = augmenter(xb, training=True)
        out = (xb, tf.one_hot(batch[1], num_classes) if targets is None else batch[1])
        out = out + (batch[2],) if len(batch) == 3 else out
        return mixer(*out) if mixer is not None else out

    seeded = augmenter is not None or mixer is not None  # stateful seed generators: one thread (below)
    ds = ds.map(transform, num_parallel_calls=1 if seeded else tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
