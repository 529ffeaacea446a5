"""bench's input pipeline and evaluation against the seed's, on the same arrays and the same model.

- Augmented training batches: the seed's Keras ``ImageDataGenerator`` flow with its appendix settings
  (rotation 35, shifts 0.25, brightness 0.5-1.5, shear 0.4, zoom 0.4, horizontal flip, constant fill)
  against bench's tf.data pipeline with the paper recipe's augmentation (the same strengths), batch 32.
- Evaluation: the seed's Python loop of one ``model.predict`` per batch of 32 against bench's single
  prediction pass (``bench.inference.classifier.predict_probs``), baseline CNN + hybrid head (cpu recipe options).

Prints images/s of each and the ratio. Arrays: FER2013-sized 48x48 synthetic faces (no data needed).

    python benchmarks/investigations/vs_seed_pipeline.py [--train-batches 100] [--eval-images 3589]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def faces(n: int) -> tuple[np.ndarray, np.ndarray]:
    from bench.data.synthetic import synthesize

    images, labels, _ = synthesize(n, seed=0)
    return images, labels


def seed_generator_rate(images, labels, batches: int) -> float:
    import keras
    import tensorflow as tf

    try:
        generator_class = tf.keras.preprocessing.image.ImageDataGenerator
    except AttributeError as exc:  # pragma: no cover - if TensorFlow drops it
        raise SystemExit(f"ImageDataGenerator is no longer importable ({exc})") from exc
    gen = generator_class(
        rotation_range=35,
        width_shift_range=0.25,
        height_shift_range=0.25,
        brightness_range=[0.5, 1.5],
        shear_range=0.4,
        zoom_range=0.4,
        horizontal_flip=True,
        fill_mode="constant",
    )
    flow = gen.flow(images[..., None].astype("float32"), keras.utils.to_categorical(labels, 7), batch_size=32, seed=42)
    next(flow)
    tic = time.perf_counter()
    for _ in range(batches):
        next(flow)
    return batches * 32 / (time.perf_counter() - tic)


def bench_pipeline_rate(images, labels, batches: int) -> float:
    from bench.data.augment import build_augmenter
    from bench.data.pipeline import make_dataset
    from bench.recipe_load import load_recipe

    augment = load_recipe("paper").data.augment
    ds = make_dataset(
        images, labels, batch_size=32, weights=np.ones(7), augmenter=build_augmenter(augment, 0), shuffle=True, seed=0
    ).repeat()
    it = iter(ds)
    for _ in range(10):
        next(it)
    tic = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * 32 / (time.perf_counter() - tic)


def evaluation_rates(images) -> tuple[float, float]:
    from bench.inference.classifier import predict_probs
    from bench.models import build_model
    from bench.recipe_load import load_recipe

    recipe = load_recipe("cpu")
    model, _ = build_model(backbone="baseline_cnn", head="hybrid", head_options=recipe.model.head_options["hybrid"])
    x = images[..., None].astype("float32")
    predict_probs(model, images[:256])  # warm both paths up
    model.predict(x[:32], verbose=0)
    tic = time.perf_counter()
    seed_way = np.concatenate([model.predict(x[i : i + 32], verbose=0) for i in range(0, len(x), 32)])
    loop = len(x) / (time.perf_counter() - tic)
    tic = time.perf_counter()
    bench_way = predict_probs(model, images)
    single = len(x) / (time.perf_counter() - tic)
    assert np.allclose(seed_way, bench_way, atol=1e-5), "the two evaluations must give the same probabilities"
    return loop, single


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-batches", type=int, default=100)
    parser.add_argument("--eval-images", type=int, default=3589)
    args = parser.parse_args()
    images, labels = faces(max(4000, args.eval_images))
    seed_rate = seed_generator_rate(images, labels, args.train_batches)
    bench_rate = bench_pipeline_rate(images, labels, args.train_batches)
    print(
        f"augmented batches (48x48, batch 32): ImageDataGenerator {seed_rate:,.0f} images/s, "
        f"bench tf.data {bench_rate:,.0f} images/s, ratio {bench_rate / seed_rate:.1f}x"
    )
    loop, single = evaluation_rates(images[: args.eval_images])
    print(
        f"evaluation of {args.eval_images} faces (baseline_cnn+hybrid): per-batch predict loop {loop:,.0f} images/s, "
        f"one pass {single:,.0f} images/s, ratio {single / loop:.1f}x (same probabilities)"
    )


if __name__ == "__main__":
    main()
