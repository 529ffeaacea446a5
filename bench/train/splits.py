"""The arrays one run trains, validates and tests on: ``dedupe``, ``max_train`` / ``max_eval``, class weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.config import Recipe
from bench.data.checks import cross_split_train_duplicates
from bench.data.dataset import FerData, stratified_holdout
from bench.data.weights import class_weights
from bench.errors import BenchError


@dataclass(frozen=True)
class Splits:
    """The arrays one run trains, validates and tests on, and the class weights it uses."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_weights: np.ndarray
    n_deduped: int = 0


def prepare_splits(data: FerData, recipe: Recipe) -> Splits:
    """Apply ``dedupe``, ``max_train`` / ``max_eval`` (stratified, seeded) and compute class weights."""
    cfg, seed = recipe.data, recipe.run.seed
    train_mask = data.splits == "train"
    n_deduped = 0
    if cfg.dedupe:
        dup = cross_split_train_duplicates(data)
        train_mask[dup] = False
        n_deduped = len(dup)

    def subset(mask: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = data.images[mask], data.labels[mask]
        if limit and len(y) > limit:
            keep = stratified_holdout(y, limit / len(y), seed)
            x, y = x[keep], y[keep]
        return x, y

    x_train, y_train = subset(train_mask, cfg.max_train)
    x_val, y_val = subset(data.splits == "val", cfg.max_eval)
    x_test, y_test = subset(data.splits == "test", cfg.max_eval)
    if len(y_train) == 0 or len(y_val) == 0:
        raise BenchError(f"{data.source}: training needs non-empty train and val splits; sizes {data.split_sizes()}")
    cw = recipe.class_weights
    weights = class_weights(y_train, cw.scheme, cw.power, cw.boost)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, weights, n_deduped)
