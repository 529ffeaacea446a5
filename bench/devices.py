"""Data-parallel training on the local devices (``run.devices``, ``bench run --devices N``) under JAX, through
Keras' own distribution API (``keras.distribution.DataParallel``); one device everywhere else.

Why Keras' API and no code of bench's own: with a distribution set before the model is built, Keras' JAX
trainer replicates every variable on each device and splits each input batch along its first axis
(``jax.make_array_from_process_local_data`` with a ``NamedSharding``); its ``jax.jit`` train step then
runs on the global, sharded batch and XLA (GSPMD) inserts the gradient all-reduce. What that means for a run:

- The global batch stays ``data.batch_size``: each of N devices gets ``batch_size / N`` images a step, so
  the batch must divide by N (a one-line error says so). The learning rate, schedule, steps per epoch and
  the order of the data are those of the recipe, and one step averages the loss over the same global batch:
  the same training, up to the order of float reductions (tests/test_data_parallel.py: within 1e-7 over a few
  steps; over 90 steps of the cpu recipe those rounding differences grew to 2 % of the loss). Hence
  ``run.devices`` is a speed setting, left out of the recipe hash like ``run.steps_per_execution``.
- BatchNorm: jit's semantics do not depend on the sharding, so a BatchNorm layer's batch mean and variance
  are over the global batch (XLA all-reduces them), not per device: no "sync BatchNorm" switch is needed.
  Measured, not assumed: tests/test_data_parallel.py feeds two devices halves with means 0 and 2 and finds
  the global mean, 1, in the layer's moving mean.
- The learning rate: a recipe's ``learning_rate`` is for its ``batch_size``. Raising ``data.batch_size`` to
  give more devices more work changes the training (and the recipe hash), and bench does not rescale the
  rate silently: set it yourself (the linear rule, rate x k for a batch k times larger with a few warm-up
  epochs, is Goyal et al. 2017's for SGD; for Adam-type optimizers rate x sqrt(k), Malladi et al. 2022).
- Evaluation: prediction streams pad their last batch to a full one and their batch size is rounded up to a
  multiple of N (:func:`bench.data.batches.make_stream`), so every batch splits evenly; the padding rows are
  dropped, so a split of any size (FER2013's PublicTest: 3,589 faces) is predicted whole, each face once.
- Checkpoints hold plain arrays (Keras gathers a replicated variable to NumPy to save it, and places a
  loaded value by the variable's layout), so a run checkpointed on N devices resumes on M (``bench run
  --resume RUN_ID --devices M``).

TensorFlow and PyTorch train on one device here: Keras' distribution API is JAX-only, and TensorFlow's
``MirroredStrategy`` would need bench's training, evaluation and checkpoint code inside its scope, with
Keras' BatchNormalization computing per-replica statistics there unless built ``synchronized=True``: a second
path to keep equal to this one. So ``run.devices`` above 1 there is a one-line error naming JAX.
"""

from __future__ import annotations

from bench.backend import backend_name
from bench.config import Recipe
from bench.errors import BenchError


def check_devices(recipe: Recipe) -> None:
    """A one-line error for a ``run.devices`` this backend cannot honour or whose batch does not split:
    cheap (imports no backend library), so a command checks it before TensorFlow or JAX loads."""
    devices, batch = recipe.run.devices, recipe.data.batch_size
    if devices > 1 and backend_name() != "jax":
        raise BenchError(
            f"run.devices = {devices}: bench trains on several devices under JAX only (KERAS_BACKEND=jax, see "
            f"the README's 'Several GPUs'); under {backend_name()} it trains on one: use --devices 1"
        )
    if devices > 1 and batch % devices:
        raise BenchError(_split_message(batch, devices))


def _split_message(batch: int, devices: int) -> str:
    fit = max(d for d in range(1, devices + 1) if batch % d == 0)
    return (
        f"data.batch_size = {batch} does not split over {devices} devices: it is the global batch, each device "
        f"takes an equal share; use --devices {fit} or a batch_size that {devices} divides, e.g. "
        f"{-(-batch // devices) * devices} (then mind the learning rate: bench does not rescale it)"
    )


def local_devices() -> list:
    """The devices a run may split its batch over: JAX's local devices of its default platform (the GPUs,
    else the CPU, which ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` splits into N); one
    placeholder under any other backend, which trains on one device."""
    if backend_name() != "jax":
        return [backend_name()]
    import jax

    return jax.local_devices()


def resolve_devices(requested: int, available: int) -> int:
    """How many devices a run uses: ``requested``, or all ``available`` ones for 0; more than are there is
    a one-line error."""
    if requested > available:
        raise BenchError(
            f"run.devices = {requested}, but this machine has {available} local device(s) for "
            f"{backend_name()}; use --devices {available} (0 = all of them)"
        )
    return requested or available


def use_devices(recipe: Recipe) -> int:
    """Set (or clear) Keras' distribution for one run, before its model is built, and return how many devices
    it trains on. One device: no distribution at all, Keras' usual path. Called for every run, so a process
    that runs several (``bench run --seed ...``, ``bench tune``) never keeps an earlier run's setting."""
    check_devices(recipe)
    devices = local_devices()
    count = resolve_devices(recipe.run.devices, len(devices))
    if backend_name() != "jax":
        return 1
    if count > 1 and recipe.data.batch_size % count:  # run.devices = 0 found more devices than the batch splits
        raise BenchError(_split_message(recipe.data.batch_size, count))
    import keras

    distribution = keras.distribution.DataParallel(devices=devices[:count]) if count > 1 else None
    keras.distribution.set_distribution(distribution)
    return count


def device_count() -> int:
    """How many devices the distribution in force splits a batch over (1 without one): what an input
    stream's batch size must be a multiple of."""
    if backend_name() != "jax":
        return 1
    import keras

    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(distribution.device_mesh.devices.size)


def split_batch_size(batch_size: int, devices: int) -> int:
    """``batch_size`` rounded up to a multiple of ``devices``: a padded prediction stream's batch size."""
    return -(-batch_size // devices) * devices
