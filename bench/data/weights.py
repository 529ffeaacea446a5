"""Class weights (none / balanced / power, with per-class boosts) applied as per-sample weights.

Keras' ``class_weight`` argument is unreliable with tf.data inputs, so bench always passes a weight
per sample instead.
"""

from __future__ import annotations

import numpy as np

from bench import CLASS_NAMES


def balanced_weights(labels: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """scikit-learn's 'balanced' weights n / (k * count_c); classes absent from ``labels`` get 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


def class_weights(
    labels: np.ndarray,
    scheme: str = "balanced",
    power: float = 1.0,
    boost: dict[str, float] | None = None,
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> np.ndarray:
    """Per-class weights, shape (len(class_names),).

    Args:
        labels: training labels.
        scheme: ``none`` (all 1), ``balanced`` (inverse frequency), ``power`` (balanced ** power;
            0 is none, 1 is balanced).
        power: the exponent for ``power``.
        boost: class name -> multiplier applied last (the seed boosted disgust x3).
        class_names: the data's classes (FER+ has 8); ``labels`` index them.

    With soft targets (FER+ ``crossentropy``) a sample's weight is that of its majority label, so a
    contempt-majority face counts as much as in majority mode whatever its vote spread.
    """
    k = len(class_names)
    unknown = set(boost or {}) - set(class_names)
    if unknown:
        raise ValueError(f"boost names unknown classes {sorted(unknown)}; expected some of {', '.join(class_names)}")
    if scheme == "none":
        weights = np.ones(k)
    elif scheme == "balanced":
        weights = balanced_weights(labels, k)
    elif scheme == "power":
        weights = balanced_weights(labels, k) ** power
    else:
        raise ValueError(f"scheme must be none, balanced or power; received scheme={scheme!r}")
    for name, factor in (boost or {}).items():
        weights[class_names.index(name)] *= factor
    return weights


def sample_weights(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weight of each sample: its class's weight (float32)."""
    return weights[labels].astype(np.float32)
