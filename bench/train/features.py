"""The feature cache: a head-only phase trains the head on backbone features computed once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench import callbacks as cb
from bench.config import Recipe
from bench.data.batches import make_stream, predict_all
from bench.train.splits import Splits

CACHE_LIMIT_BYTES = 6 * 2**30
"""Largest feature cache (train + val, float32) built in memory; beyond it the phase runs uncached.
ResNet50 at 48x48 needs ~1 GB for FER2013; at 224x224 ~12 GB, which would not fit this machine."""


@dataclass
class CachedFeatures:
    """A head-only phase's inputs: backbone features of the (never augmented) splits, computed once."""

    train: object  # a make_stream stream of (features, one-hot, weight)
    validation: cb.ValidationMetrics
    seconds: float  # time spent computing the features


def cache_features(model, splits: Splits, recipe: Recipe, fixed_steps: int | None) -> CachedFeatures | None:
    """Backbone features of the train and val splits, batched exactly like the uncached plain dataset
    (same oversampling, shuffle seed and batches), so training the head on them takes the same steps.

    ``model`` is a :class:`bench.models.FaceModel`; its ``features`` sub-model computes them. Features
    come from the backbone in inference mode, which is what a frozen backbone computes in ``fit`` too
    (frozen BatchNorm runs in inference mode); a backbone with dropout layers would differ.
    Returns None when the cache would exceed :data:`CACHE_LIMIT_BYTES`."""
    extractor = model.features
    per_image = int(np.prod(extractor.output.shape[1:])) * 4
    if per_image * (len(splits.y_train) + len(splits.y_val)) > CACHE_LIMIT_BYTES:
        return None
    tic = time.perf_counter()

    def features(x):  # the same input pipeline, unaugmented and in order
        return predict_all(extractor, x)

    bs, seed = recipe.data.batch_size, recipe.run.seed
    train = make_stream(
        features(splits.x_train),
        splits.y_train,
        batch_size=bs,
        weights=splits.class_weights,
        shuffle=True,
        seed=seed,
        oversample=recipe.data.oversample,
        targets=splits.t_train,
        repeat=bool(fixed_steps),
    )
    val = make_stream(features(splits.x_val), splits.y_val, batch_size=max(bs, 256), inputs_only=True)
    return CachedFeatures(train, cb.ValidationMetrics(val, splits.y_val), time.perf_counter() - tic)
