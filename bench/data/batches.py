"""A backend-neutral input stream: NumPy batches through ``keras.utils.PyDataset``, no TensorFlow.

Under the TensorFlow backend bench keeps tf.data (:func:`bench.data.pipeline.make_dataset`): 834
against 174 augmented images/s for ArrayBatches there (benchmarks/loader_speed.py, 2 cores shared with a
training job); under JAX or PyTorch :func:`make_stream` returns
:class:`ArrayBatches`, which has the same semantics: a seeded shuffle that changes every pass, a
training stream that drops each pass's partial last batch, evaluation streams that keep every image,
one-hot labels (or FER+ soft targets), per-sample weights and the same Keras augmentation layers applied
to whole batches.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from bench.data.pipeline import label_width, oversample_indices


def steps_per_pass(n: int, batch_size: int, shuffle: bool) -> int:
    """Batches in one pass over ``n`` images: a shuffled (training) pass drops its partial last batch
    unless it is the only one, as tf.data's ``drop_remainder`` does in :func:`make_dataset`."""
    if shuffle and n >= batch_size:
        return n // batch_size
    return math.ceil(n / batch_size)


def compiled_augmenter(augmenter, compile: bool | None = None):
    """``x (numpy) -> augmented x (numpy)``: ``augmenter`` in training mode on one whole batch.

    ``compile`` (JAX only; default: when JAX sees a GPU) runs the layers as one ``jax.jit`` of Keras'
    public ``stateless_call`` instead of dozens of eagerly dispatched ops, and writes the returned
    seed-generator states back, so the random stream is the one the eager call would draw. On this
    project's 2-core CPU the compiled call was ~3x slower than eager (169 vs 483 augmented images/s,
    benchmarks/loader_speed.py, contended; the affine layers' gathers dominate), hence not the CPU
    default; on a GPU it is unmeasured until benchmarks/device_check.py runs (it times both)."""
    if keras.backend.backend() != "jax":
        compile = False
    elif compile is None:
        from bench.backend import accelerators

        compile = bool(accelerators())
    if not compile:
        return lambda x: keras.ops.convert_to_numpy(augmenter(x, training=True))
    import jax

    def pure(states, x):
        return augmenter.stateless_call([], states, x, training=True)

    step = jax.jit(pure)

    def call(x):
        if not augmenter.built:  # stateless_call needs built layers; the first batch builds them eagerly
            return keras.ops.convert_to_numpy(augmenter(x, training=True))
        y, states = step([v.value for v in augmenter.non_trainable_variables], x)
        for variable, state in zip(augmenter.non_trainable_variables, states, strict=True):
            variable.assign(state)
        return np.asarray(y)

    return call


class ArrayBatches(keras.utils.PyDataset):
    """``(x, y[, sample_weight])`` batches (or ``x`` alone) from in-memory arrays; ``y`` is one-hot
    ``labels`` or the rows of ``targets``.

    Args: as :func:`bench.data.pipeline.make_dataset`, plus
        inputs_only: yield ``x`` only (what ``predict`` reads).
        pad_last: with ``inputs_only``, fill the last partial batch up with black images so every batch
            has one shape; the caller drops the extra predictions (:func:`predict_all` does).
        repeat: never end (``fit`` with a fixed ``steps_per_epoch``); pass ``p`` of an endless stream is
            shuffled with ``seed + p``, so where an epoch boundary falls does not change the stream.

    Pass ``p`` of a finite shuffled stream (one pass per epoch) is shuffled with ``seed + p`` too.
    Batches are built in the calling thread (``workers=1``): the augmentation layers draw from a
    stateful seed generator, so parallel workers would race for seeds.
    """

    def __init__(
        self,
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
        inputs_only: bool = False,
        repeat: bool = False,
        targets: np.ndarray | None = None,
        num_classes: int | None = None,
        pad_last: bool = False,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; received batch_size={batch_size}")
        self.images = images[..., None] if images.ndim == 3 else images
        self.index = oversample_indices(labels, oversample, seed) if shuffle else np.arange(len(labels))
        self.labels = np.asarray(labels).astype(np.int64)
        self.sample_weights = None if weights is None else np.asarray(weights, np.float32)[self.labels]
        num_classes = num_classes or label_width(targets, weights)  # as make_dataset
        self.targets = None if targets is None else np.asarray(targets, np.float32)
        self.one_hot = np.eye(num_classes, dtype=np.float32)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment = None if augmenter is None else compiled_augmenter(augmenter)
        self.mixer = mixer
        self.inputs_only, self.repeat, self.pad_last = inputs_only, repeat, pad_last and inputs_only
        self.per_pass = steps_per_pass(len(self.index), batch_size, shuffle)
        self.epoch = 0
        self._order_pass, self._order = -1, self.index

    @property
    def num_batches(self):
        return None if self.repeat else self.per_pass

    def __len__(self):
        return self.per_pass

    def _pass_order(self, p: int) -> np.ndarray:
        if p != self._order_pass:
            self._order_pass = p
            self._order = np.random.default_rng(self.seed + p).permutation(self.index) if self.shuffle else self.index
        return self._order

    def __getitem__(self, i: int):
        p, j = divmod(i, self.per_pass) if self.repeat else (self.epoch, i)
        order = self._pass_order(p)
        picked = order[j * self.batch_size : (j + 1) * self.batch_size]
        x = self.images[picked].astype(np.float32)
        if self.augment is not None:
            x = self.augment(x)
        if self.inputs_only:
            if self.pad_last and len(x) < self.batch_size:
                x = np.concatenate([x, np.zeros((self.batch_size - len(x), *x.shape[1:]), x.dtype)])
            return x
        y = self.one_hot[self.labels[picked]] if self.targets is None else self.targets[picked]
        out = (x, y) if self.sample_weights is None else (x, y, self.sample_weights[picked])
        if self.mixer is not None:
            out = tuple(keras.ops.convert_to_numpy(part) for part in self.mixer(*out))
        return out

    def on_epoch_end(self):
        if not self.repeat:
            self.epoch += 1


def make_stream(images, labels, *, batch_size: int, inputs_only: bool = False, repeat: bool = False, **options):
    """The input stream ``fit``/``predict`` read, for the backend in use.

    TensorFlow: the tf.data pipeline of :func:`bench.data.pipeline.make_dataset` (``.map`` to inputs,
    ``.repeat()``); any other backend: :class:`ArrayBatches`. ``options`` are make_dataset's keywords.

    Under JAX and PyTorch an ``inputs_only`` stream ends in a padded full batch (``pad_last``), so
    ``predict`` returns ``ceil(n / batch_size) * batch_size`` rows and the caller keeps the first ``n``
    (:func:`predict_all`): XLA compiles the prediction step once per input shape, and on a GPU each
    compile autotunes every convolution again (benchmarks/RESULTS.md#gpu-check). Data-parallel on N devices,
    that batch size is rounded up to a multiple of N, so the padded batches split evenly over them."""
    from bench.backend import is_tensorflow

    if not is_tensorflow():
        if inputs_only:  # several devices (bench.devices): every padded batch splits evenly over them
            from bench.devices import device_count, split_batch_size

            batch_size = split_batch_size(batch_size, device_count())
        return ArrayBatches(
            images,
            labels,
            batch_size=batch_size,
            inputs_only=inputs_only,
            repeat=repeat,
            pad_last=inputs_only,
            **options,
        )
    from bench.data.pipeline import make_dataset

    ds = make_dataset(images, labels, batch_size=batch_size, **options)
    if inputs_only:
        ds = ds.map(lambda x, *rest: x)
    return ds.repeat() if repeat else ds


def predict_all(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``model``'s outputs for every image of ``images``, in order, in one prediction pass."""
    stream = make_stream(images, np.zeros(len(images), np.int64), batch_size=batch_size, inputs_only=True)
    return model.predict(stream, verbose=0)[: len(images)]
