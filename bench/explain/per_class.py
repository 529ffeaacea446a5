"""Per-class average maps over a data split: where the model looks when it is sure and right.

For each class, the ``n`` faces of the split the model labels correctly with the highest probability;
their mean face, mean Grad-CAM map (each face's map scaled to a maximum of 1 first, so every face counts
the same whatever its gradients' scale) and mean attention gate. Confident correct faces show the cue the
model relies on; the mean over several of them keeps what they share and blurs what is one face's own.
"""

from __future__ import annotations

import numpy as np


def most_confident_correct(probabilities: np.ndarray, labels: np.ndarray, n: int) -> dict[int, np.ndarray]:
    """Per class (every column of ``probabilities``), the indices of its ``n`` correctly predicted faces
    with the highest probability, most confident first (fewer when fewer are correct; none is an empty array)."""
    if n < 1:
        raise ValueError(f"n must be >= 1; received n={n}")
    predicted = probabilities.argmax(axis=1)
    picks = {}
    for c in range(probabilities.shape[1]):
        correct = np.flatnonzero((labels == c) & (predicted == c))
        picks[c] = correct[np.argsort(-probabilities[correct, c], kind="stable")][:n]
    return picks


def class_averages(model, images: np.ndarray, labels: np.ndarray, class_names, n: int) -> list[dict]:
    """One column per class for :func:`bench.explain.render.class_grid`: ``label`` (class, faces averaged),
    ``face`` (mean face; None without faces), ``Grad-CAM`` and ``attention`` (mean maps; None without faces
    or attention), and ``count``.

    Args:
        model: a bench model; ``images`` (N, 48, 48) uint8 and ``labels`` (N,) of one split, in the model's
            classes ``class_names``; ``n``: faces averaged per class at most.
    """
    from bench.explain.gradcam import normalise
    from bench.explain.maps import face_maps, probabilities

    picks = most_confident_correct(probabilities(model, images), labels, n)
    rows = []
    for c, name in enumerate(class_names):
        index = picks[c]
        row = {"label": f"{name} ({len(index)})", "count": len(index), "Grad-CAM": None, "attention": None}
        row["face"] = images[index].mean(axis=0) if len(index) else None
        if len(index):
            maps = face_maps(model, images[index], explain_class=c)
            row["Grad-CAM"] = normalise(maps.grad_cam).mean(axis=0)
            if maps.attention is not None:
                mean = maps.attention.mean(axis=0)
                row["attention"] = mean - mean.min()  # the gate's contrast, as on the per-face panels
        rows.append(row)
    return rows
