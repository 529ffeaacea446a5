"""Temperature scaling (Guo et al., 2017): one scalar ``T`` that softens (``T > 1``) or sharpens (``T < 1``)
a model's probabilities, ``softmax(log p / T)``, fitted on the validation split's predictions by minimising
their negative log-likelihood. It never changes the predicted class, so accuracy and macro-F1 stay as
they are; log loss and ECE are what it repairs.

Pure NumPy/SciPy functions of predicted probabilities; :class:`bench.models.FaceModel` applies the fitted
``T`` inside the saved model, so ``bench predict`` and ``bench export`` give the calibrated probabilities.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12
"""Probabilities are clipped here before the log, in this module and in FaceModel alike."""
BOUNDS = (0.05, 20.0)
"""The temperatures searched: far wider than the 1-3 over-confident networks need."""


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)`` along the last axis.

    Args:
        probs: (..., classes) probabilities, e.g. (n, classes) or (views, n, classes).
        temperature: > 0; 1 returns the probabilities unchanged.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
    logits = np.log(np.clip(np.asarray(probs, np.float64), EPS, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)


def tta_nll(y_true: np.ndarray, probs: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``y_true`` under the view average of the tempered probabilities.

    ``probs`` is (n, classes) or (views, n, classes): with test-time augmentation the saved model tempers
    each view and the views are averaged after, so that is what the temperature is fitted to."""
    probs = np.asarray(probs)
    views = probs if probs.ndim == 3 else probs[None]
    mean = apply_temperature(views, temperature).mean(axis=0)
    return float(-np.mean(np.log(np.clip(mean[np.arange(len(y_true)), y_true], EPS, 1.0))))


def fit_temperature(y_true: np.ndarray, probs: np.ndarray, bounds: tuple[float, float] = BOUNDS) -> float:
    """The temperature that minimises :func:`tta_nll` on ``(y_true, probs)``: a bounded search over log T.

    Args:
        y_true: (n,) integer labels of the validation split (never the test split).
        probs: (n, classes) or (views, n, classes) uncalibrated probabilities of the same images.
        bounds: the smallest and largest temperature considered.

    Returns 1.0 for an empty split (nothing to fit).
    """
    from scipy.optimize import minimize_scalar

    y_true = np.asarray(y_true, np.int64)
    if not len(y_true):
        return 1.0
    result = minimize_scalar(
        lambda log_t: tta_nll(y_true, probs, float(np.exp(log_t))),
        bounds=(np.log(bounds[0]), np.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))
