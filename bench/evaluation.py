"""How a trained model is evaluated (``recipe.eval``): the probabilities of each test-time augmentation
view, then temperature scaling fitted on the validation split. :func:`bench.runner._log_evaluation` logs
what these return; they log nothing themselves."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.calibration import apply_temperature, fit_temperature
from bench.config import Recipe
from bench.inference.tta import view_probs
from bench.metrics import calibration_metrics


def evaluation_views(recipe: Recipe, images: np.ndarray, predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(views, n, classes): ``predict`` (faces -> probabilities, one prediction pass) of every view
    ``recipe.eval.tta`` averages, the face itself first (so ``[0]`` is the plain prediction)."""
    return view_probs(predict, images, recipe.eval.tta, recipe.data.augment.crop_padding)


PLAIN_METRICS = ("macro_f1", "accuracy", "balanced_accuracy", "kappa", "log_loss", "ece")
"""Logged as ``test_plain_*`` beside a TTA run's headline metrics: the same model without TTA."""


def calibrate_views(model, recipe: Recipe, views: dict, truth: dict, num_classes: int) -> tuple[dict, dict[str, float]]:
    """With ``recipe.eval.calibrate``: fit the temperature on the validation views only (never test), set it
    on the model (so the saved model carries it) and return the tempered views, with the temperature and
    every split's log loss and ECE before it. Without: the views unchanged and no metrics."""
    if not recipe.eval.calibrate:
        return views, {}
    temperature = fit_temperature(truth["val"], views["val"])
    model.set_temperature(temperature)
    metrics = {"temperature": temperature}
    for split, split_views in views.items():
        if len(truth[split]):
            raw = calibration_metrics(truth[split], split_views.mean(axis=0), num_classes)
            metrics.update({f"{split}_{k}_uncalibrated": v for k, v in raw.items()})
    return {split: apply_temperature(v, temperature) for split, v in views.items()}, metrics
