"""Evaluation metrics: pure functions of ``(y_true, y_prob)`` computed with scikit-learn."""

from __future__ import annotations

import numpy as np

from bench import CLASS_NAMES

HEADLINE_METRICS = ("macro_f1", "balanced_accuracy", "kappa", "accuracy", "log_loss", "ece")
"""The metrics a run's summary line and the leaderboard lead with, in this order."""


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins
    weighted by their share of samples."""
    confidence = y_prob.max(axis=1)
    correct = (y_prob.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def reliability_curve(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 15):
    """Per-bin (mean confidence, accuracy, count) for the reliability diagram."""
    confidence = y_prob.max(axis=1)
    correct = (y_prob.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    conf = np.array([confidence[bins == b].mean() if (bins == b).any() else np.nan for b in range(n_bins)])
    acc = np.array([correct[bins == b].mean() if (bins == b).any() else np.nan for b in range(n_bins)])
    return conf, acc, np.bincount(bins, minlength=n_bins)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Macro-F1 over every label ``0 .. num_classes - 1``, 0 for a label never predicted correctly (also one
    absent from both arrays): scikit-learn's ``f1_score(labels=range(num_classes), average="macro",
    zero_division=0)``, in NumPy so that training needs no scikit-learn (the GPU check runs where it may
    not be installed). The one definition: the validation curve of every epoch and the evaluated run's
    ``val_macro_f1`` / ``test_macro_f1`` land on the same MLflow names, so they must mean the same."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = np.zeros(num_classes)
    for c in range(num_classes):
        denominator = np.sum(y_true == c) + np.sum(y_pred == c)
        if denominator:
            scores[c] = 2 * np.sum((y_true == c) & (y_pred == c)) / denominator
    return float(np.mean(scores)) if num_classes else 0.0


def evaluate(y_true: np.ndarray, y_prob: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, float]:
    """Every headline metric plus per-class recall / precision / F1, as a flat dict of floats.

    Log loss gets all labels explicitly, so a class absent from ``y_true`` cannot crash it; ROC-AUC is
    one-vs-rest macro over the classes present (NaN with fewer than two).
    """
    from sklearn import metrics as skm

    labels = np.arange(len(class_names))
    y_pred = y_prob.argmax(axis=1)
    prob = _normalized(y_prob)
    out = {
        "macro_f1": macro_f1(y_true, y_pred, len(labels)),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
        "kappa": skm.cohen_kappa_score(y_true, y_pred, labels=labels),
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "log_loss": skm.log_loss(y_true, prob, labels=labels),
        "top2_accuracy": skm.top_k_accuracy_score(y_true, prob, k=2, labels=labels),
        "ece": expected_calibration_error(y_true, prob),
    }
    present = np.unique(y_true)
    if len(present) >= 2:
        onehot = (y_true[:, None] == labels[None, :])[:, present]
        out["roc_auc"] = skm.roc_auc_score(onehot, prob[:, present], average="macro")
    else:
        out["roc_auc"] = float("nan")
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, name in enumerate(class_names):
        out[f"recall_{name}"], out[f"precision_{name}"], out[f"f1_{name}"] = r[i], p[i], f[i]
    return {k: float(v) for k, v in out.items()}


def calibration_metrics(y_true: np.ndarray, y_prob: np.ndarray, num_classes: int) -> dict[str, float]:
    """Log loss and ECE alone, as :func:`evaluate` computes them: what temperature scaling changes (it
    never changes the predicted class), reported before and after it."""
    from sklearn.metrics import log_loss

    prob = _normalized(y_prob)
    return {
        "log_loss": float(log_loss(y_true, prob, labels=np.arange(num_classes))),
        "ece": expected_calibration_error(y_true, prob),
    }


def _normalized(y_prob: np.ndarray) -> np.ndarray:
    """Probabilities clipped away from 0 (log loss stays finite) and renormalised, in float64."""
    prob = np.clip(np.asarray(y_prob, np.float64), 1e-12, 1)
    return prob / prob.sum(axis=1, keepdims=True)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true`` (sklearn's definition). sklearn warns when the
    model predicts a class the split lacks (common on small splits); that is expected, not a fault the
    user can fix, so the warning is dropped here instead of leaking into ``bench run`` output."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    if not len(y_true):
        return float("nan")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return balanced_accuracy_score(y_true, y_pred)


def confusion(y_true: np.ndarray, y_prob: np.ndarray, n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_prob.argmax(axis=1), labels=np.arange(n_classes))


def classification_report(y_true: np.ndarray, y_prob: np.ndarray, class_names=CLASS_NAMES) -> str:
    from sklearn.metrics import classification_report as report

    return report(
        y_true,
        y_prob.argmax(axis=1),
        labels=np.arange(len(class_names)),
        target_names=list(class_names),
        digits=4,
        zero_division=0,
    )
