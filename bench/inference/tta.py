"""Test-time augmentation (``recipe.eval.tta``, ``bench predict --tta``): each face's class probabilities
averaged over views of it, as timm's ``validate.py`` and the published FER2013 recipes do.

- ``none``: the face.
- ``flip``: the face and its horizontal mirror (2 views).
- ``crops``: the face and the four corner crops of pad-and-crop training at its extreme offsets
  (``data.augment.crop_padding`` pixels each way), each with its mirror (10 views).

The crops pad the way training's :class:`bench.data.augment.RandomPadCrop` does: Keras' ``reflect`` fill,
which repeats the edge pixel (``d c b a | a b c d``, NumPy's ``symmetric``), so every crop is one training
could have drawn. Views are NumPy arrays; the model sees each one as it sees any batch of faces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from bench.errors import BenchError

MODES = ("none", "flip", "crops")
VIEW_COUNTS = {"none": 1, "flip": 2, "crops": 10}


def check_mode(mode: str, padding: int) -> None:
    """A one-line error for an unknown mode, or for ``crops`` without crops to take."""
    if mode not in MODES:
        raise BenchError(f"tta must be one of {', '.join(MODES)}; received {mode!r}")
    if mode == "crops" and padding < 1:
        raise BenchError(
            "tta = crops needs data.augment.crop_padding > 0 (the shift of the corner crops, in pixels); "
            f"received crop_padding = {padding}"
        )


def shifted(images: np.ndarray, dy: int, dx: int, padding: int) -> np.ndarray:
    """``images`` (n, H, W[, C]) padded by ``padding`` on each side (edge-repeating reflection) and cropped
    back to (H, W) at offset ``(padding + dy, padding + dx)``: output pixel (y, x) is input (y + dy, x + dx)."""
    h, w = images.shape[1:3]
    pad = [(0, 0), (padding, padding), (padding, padding)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images, pad, mode="symmetric")
    return padded[:, padding + dy : padding + dy + h, padding + dx : padding + dx + w]


def views(images: np.ndarray, mode: str, padding: int = 0) -> Iterator[np.ndarray]:
    """The views ``mode`` averages, one (n, H, W[, C]) array at a time, the face itself first.

    Args:
        images: (n, H, W) or (n, H, W, C) faces.
        mode: ``none``, ``flip`` or ``crops`` (see the module docstring).
        padding: the corner crops' shift in pixels (``data.augment.crop_padding``); ``crops`` only.
    """
    check_mode(mode, padding)
    if mode == "none":
        yield images
        return
    for base in _bases(images, mode, padding):
        yield base
        yield base[:, :, ::-1]


def _bases(images: np.ndarray, mode: str, padding: int) -> Iterator[np.ndarray]:
    """The face, then (``crops``) its four corner crops: made one at a time, so ten views of a large split
    never sit in memory together."""
    yield images
    if mode == "crops":
        for dy in (-padding, padding):
            for dx in (-padding, padding):
                yield shifted(images, dy, dx, padding)


def view_probs(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, mode: str, padding: int = 0):
    """(views, n, classes): ``predict`` (faces -> probabilities) of every view, the face itself first.

    The mean over the first axis is the TTA prediction; its first row the plain one."""
    return np.stack([np.asarray(predict(np.ascontiguousarray(v))) for v in views(images, mode, padding)])


def tta_probs(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, mode: str, padding: int = 0):
    """(n, classes): the probabilities of ``predict`` averaged over the views of ``mode``."""
    return view_probs(predict, images, mode, padding).mean(axis=0)
