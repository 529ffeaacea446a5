"""Augmented images/s of bench's two input streams under the Keras backend in use.

tf.data (:func:`bench.data.pipeline.make_dataset`, TensorFlow backend only) against
:class:`bench.data.batches.ArrayBatches` (any backend), on FER2013-sized random uint8 arrays with the
paper recipe's augmentation plus occlusion and contrast, batch 64; under JAX also with the augmentation
layers jit-compiled (:func:`bench.data.batches.compiled_augmenter`). The figures decide which stream
:func:`bench.data.batches.make_stream` picks under TensorFlow and whether JAX compiles augmentation.

    KERAS_BACKEND=tensorflow python benchmarks/loader_speed.py [--batches 60]
    KERAS_BACKEND=jax python benchmarks/loader_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _images_per_second(next_batch, n_batches: int, batch_size: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        next_batch()
    tic = time.perf_counter()
    for _ in range(n_batches):
        next_batch()
    return n_batches * batch_size / (time.perf_counter() - tic)


def measure(n_batches: int, batch_size: int = 64, n: int = 28709) -> dict[str, float]:
    """``{stream name: augmented images/s}`` for every stream the backend can run."""
    import keras

    from bench.data.augment import build_augmenter
    from bench.data.batches import ArrayBatches, compiled_augmenter
    from bench.recipe_load import load_recipe

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), rng.integers(0, 7, n)
    augment = load_recipe("paper", ["data.augment.contrast=0.2", "data.augment.occlusion=0.2"]).data.augment
    common = dict(batch_size=batch_size, weights=np.ones(7), shuffle=True, seed=0)
    results = {}
    for compile in (False, True) if keras.backend.backend() == "jax" else (False,):
        arrays = ArrayBatches(images, labels, augmenter=build_augmenter(augment, 0), repeat=True, **common)
        arrays.augment = compiled_augmenter(build_augmenter(augment, 0), compile=compile)
        step = iter(range(10**9))
        name = "ArrayBatches" + (" (jit)" if compile else "")
        results[name] = _images_per_second(lambda a=arrays, s=step: a[next(s)], n_batches, batch_size)
    if keras.backend.backend() == "tensorflow":
        from bench.data.pipeline import make_dataset

        ds = iter(make_dataset(images, labels, augmenter=build_augmenter(augment, 0), **common).repeat())
        results["tf.data"] = _images_per_second(lambda: next(ds), n_batches, batch_size)
    return results


def main() -> None:
    import keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    results = measure(args.batches)
    for name, ips in results.items():
        print(f"{keras.backend.backend():10s} {name:18s} {ips:8.0f} augmented images/s")
    figures = {"backend": keras.backend.backend(), "batches": args.batches, "augmented_images_per_second": results}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
