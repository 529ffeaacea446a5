"""The arrays one run trains, validates and tests on: ``dedupe``, ``max_train`` / ``max_eval``, class weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench import CLASS_NAMES
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
    class_names: tuple[str, ...] = CLASS_NAMES
    t_train: np.ndarray | None = None  # soft training targets (data.targets = crossentropy), else None


def prepare_splits(data: FerData, recipe: Recipe) -> Splits:
    """Apply ``dedupe``, ``max_train`` / ``max_eval`` (stratified, seeded) and compute class weights.

    Soft targets (FER+ ``crossentropy``) are kept for the training split only: validation and test are
    always scored on the majority labels. Class weights and stratification use the majority label."""
    cfg, seed = recipe.data, recipe.run.seed
    train_mask = data.splits == "train"
    n_deduped = 0
    if cfg.dedupe:
        dup = cross_split_train_duplicates(data)
        train_mask[dup] = False
        n_deduped = len(dup)

    def subset(mask: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        idx = np.flatnonzero(mask)
        if limit and len(idx) > limit:
            idx = idx[stratified_holdout(data.labels[idx], limit / len(idx), seed)]
        return data.images[idx], data.labels[idx], None if data.targets is None else data.targets[idx]

    x_train, y_train, t_train = subset(train_mask, cfg.max_train)
    x_val, y_val, _ = subset(data.splits == "val", cfg.max_eval)
    x_test, y_test, _ = subset(data.splits == "test", cfg.max_eval)
    if len(y_train) == 0 or len(y_val) == 0:
        raise BenchError(f"{data.source}: training needs non-empty train and val splits; sizes {data.split_sizes()}")
    cw = recipe.class_weights
    weights = class_weights(y_train, cw.scheme, cw.power, cw.boost, class_names=data.class_names)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, weights, n_deduped, data.class_names, t_train)
