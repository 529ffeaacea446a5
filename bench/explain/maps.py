"""Per face: what the model predicts, and where it looks for the class explained (Grad-CAM, and the hybrid
head's spatial attention where the head has one). Returns arrays; drawing is :mod:`bench.explain.render`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError

BATCH = 64  # faces per forward pass: bounds memory on a large split, one compiled shape for most calls


@dataclass(frozen=True)
class FaceMaps:
    """The maps of ``n`` faces.

    Attributes:
        probabilities: (n, K) what the model returns (tempered when it was calibrated).
        explained: (n,) index of the class each map explains (the predicted one unless asked otherwise).
        grad_cam: (n, H, W) Grad-CAM maps on the backbone's feature grid (raw, non-negative).
        attention: (n, H, W) the head's spatial attention gate (0-1), or None for a head without one.
    """

    probabilities: np.ndarray
    explained: np.ndarray
    grad_cam: np.ndarray
    attention: np.ndarray | None

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def class_index(class_names, name: str) -> int:
    """The column of class ``name`` in the model's output, or a one-line error listing the model's classes."""
    names = list(class_names)
    if name in names:
        return names.index(name)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise BenchError(f"the model has no class '{name}'; {hint}--class takes one of {', '.join(names)}")


def probabilities(model, faces: np.ndarray) -> np.ndarray:
    """``(n, K)`` what the model returns for raw 0-255 ``faces`` (n, 48, 48[, 1]), :data:`BATCH` at a time."""
    x = np.asarray(faces, dtype=np.float32).reshape(len(faces), 48, 48, 1)
    out = [np.asarray(model(x[i : i + BATCH], training=False), dtype=np.float32) for i in range(0, len(x), BATCH)]
    return np.concatenate(out) if out else np.zeros((0, int(model.outputs[0].shape[-1])), np.float32)


def face_maps(model, faces: np.ndarray, explain_class: int | None = None) -> FaceMaps:
    """Predictions, Grad-CAM and attention maps of ``faces``.

    Args:
        model: a bench :class:`~bench.models.FaceModel` (``features``, ``head``).
        faces: (n, 48, 48) or (n, 48, 48, 1) raw 0-255 faces, as the model takes them.
        explain_class: the class index every map explains; None explains each face's predicted class.
    """
    from bench.explain.attention import spatial_attention
    from bench.explain.gradcam import feature_grid, grad_cam

    feature_grid(model)  # a one-line error before any work when there is no spatial map
    if not len(faces):
        raise ValueError("faces is empty; there is nothing to explain")
    x = np.asarray(faces, dtype=np.float32).reshape(len(faces), 48, 48, 1)
    probs, cams, attention = [], [], []
    for start in range(0, len(x), BATCH):
        batch = x[start : start + BATCH]
        probs.append(np.asarray(model(batch, training=False), dtype=np.float32))
        features = np.asarray(model.features(batch, training=False), dtype=np.float32)
        target = probs[-1].argmax(axis=1) if explain_class is None else np.full(len(batch), explain_class)
        cams.append(grad_cam(model.head, features, target))
        attention.append(spatial_attention(model.head, features))
    probabilities = np.concatenate(probs)
    explained = probabilities.argmax(axis=1) if explain_class is None else np.full(len(x), explain_class)
    return FaceMaps(
        probabilities,
        explained,
        np.concatenate(cams),
        None if attention[0] is None else np.concatenate(attention),
    )
