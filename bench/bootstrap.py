"""Bootstrap statistics of macro-F1 on resampled test images: each row's confidence interval and the
paired test of a row against the leader. Vectorised over resamples: a thousand resamples of a few
thousand faces, for every row of a leaderboard, must not take scikit-learn's minutes.

Macro-F1 here is :func:`bench.metrics.macro_f1`'s definition (every label, 0 for one never predicted
correctly), computed for many resamples at once."""

from __future__ import annotations

import numpy as np

from bench import NUM_CLASSES


def macro_f1_resamples(
    y_true: np.ndarray, y_pred: np.ndarray, index: np.ndarray, num_classes: int = NUM_CLASSES
) -> np.ndarray:
    """Macro-F1 (all ``num_classes`` classes, 0 for a class with no support and no predictions, as
    scikit-learn's ``zero_division=0``) of each bootstrap resample; ``index`` is (B, n) indices into the
    arrays."""
    t, p = y_true[index], y_pred[index]
    f1 = np.zeros((len(index), num_classes))
    for c in range(num_classes):
        tp = np.sum((t == c) & (p == c), axis=1)
        denom = np.sum(t == c, axis=1) + np.sum(p == c, axis=1)
        f1[:, c] = np.divide(2 * tp, denom, out=np.zeros(len(index)), where=denom > 0)
    return f1.mean(axis=1)


def bootstrap_index(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def seed_mean_resamples(
    y_true: np.ndarray, preds: list[np.ndarray], index: np.ndarray, num_classes: int = NUM_CLASSES
) -> np.ndarray:
    """The mean over seeds of each seed's macro-F1, on each bootstrap resample of the test images.

    This is the statistic the leaderboard shows (mean over seeds), so its interval brackets the shown
    mean; an interval of the seeds' pooled (averaged-probability) predictions would describe an
    ensemble instead, which scores higher than any of its seeds."""
    return np.mean([macro_f1_resamples(y_true, pred, index, num_classes) for pred in preds], axis=0)


def paired_test(
    y_true: np.ndarray,
    preds_a: list[np.ndarray],
    preds_b: list[np.ndarray],
    index: np.ndarray,
    num_classes: int = NUM_CLASSES,
) -> tuple[float, float, float]:
    """Paired bootstrap of macro-F1(a) - macro-F1(b) on the same resampled images, each side the mean over
    its seeds (``preds_*``: one array of predicted labels per seed): (2.5 % quantile, 97.5 % quantile,
    two-sided p-value)."""
    diff = seed_mean_resamples(y_true, preds_a, index, num_classes) - seed_mean_resamples(
        y_true, preds_b, index, num_classes
    )
    p_value = min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)))
    low, high = np.quantile(diff, [0.025, 0.975])
    return float(low), float(high), float(p_value)
