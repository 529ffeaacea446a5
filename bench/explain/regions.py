"""Where a synthetic face shows its expression: the check that the maps mean something.

:mod:`bench.data.synthetic` draws each face from a random pose, lighting, occlusion and noise, then its
expression (mouth, brows, eyes, nose wrinkle). Redrawing one face with the same random stream and each
class's mean expression changes only the expression, so the pixels that differ between those drawings are
exactly where that face's expression can be seen, in its own pose. A model that learned the expression
should put its Grad-CAM mass there rather than on the background, hair or cheeks.
"""

from __future__ import annotations

import numpy as np

from bench import CLASS_NAMES, FACE_SIZE

CHANGE = 0.04  # a pixel is part of the expression when the 7 expressions move it by more than this (0-1 scale)
DILATE = 2  # pixels: the regions around the strokes (a brow's band, not its 1-pixel line)


def expression_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` synthetic faces with the regions where each shows its expression.

    Returns ``(faces, labels, masks)``: uint8 (n, 48, 48) faces drawn with their class's mean expression
    (classes in turn), their labels, and bool (n, 48, 48) masks of the pixels that change when only the
    expression changes, dilated by :data:`DILATE` pixels.
    """
    import cv2

    from bench.data.synthetic import EXPRESSIONS, draw_face

    means = np.array([EXPRESSIONS[c] for c in CLASS_NAMES])
    labels = np.arange(n) % len(CLASS_NAMES)
    faces = np.empty((n, FACE_SIZE, FACE_SIZE), np.uint8)
    masks = np.empty((n, FACE_SIZE, FACE_SIZE), bool)
    kernel = np.ones((2 * DILATE + 1, 2 * DILATE + 1), np.uint8)
    for i, label in enumerate(labels):
        face_seed = (seed, i)
        drawn = np.stack([draw_face(m, np.random.default_rng(face_seed)) for m in means])  # same pose, 7 expressions
        faces[i] = np.round(drawn[label] * 255).astype(np.uint8)
        changed = (drawn.max(axis=0) - drawn.min(axis=0) > CHANGE).astype(np.uint8)
        masks[i] = cv2.dilate(changed, kernel).astype(bool)
    return faces, labels, masks


def mass_fraction(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per face, the share of a map's mass inside its mask: ``(n,)`` in 0-1 (NaN for an all-zero map).

    Args:
        maps: (n, H, W) non-negative maps on any grid (upsampled bilinearly to the masks' grid).
        masks: (n, 48, 48) bool.
    """
    from bench.explain.gradcam import upsample

    up = upsample(maps, masks.shape[-1])
    total = up.reshape(len(up), -1).sum(axis=1)
    inside = (up * masks).reshape(len(up), -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)
