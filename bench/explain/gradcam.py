"""Grad-CAM (Selvaraju et al., 2017) on a bench model's backbone feature map.

The model is split where bench already splits it: ``model.features`` (faces -> feature map ``A``,
``(batch, H, W, C)``) and ``model.head`` (``A`` -> probabilities). The map of class ``c`` is
``relu(sum_k alpha_k * A_k)`` with ``alpha_k`` the spatial mean of ``d y_c / d A_k``.

``y_c`` is the head's **pre-softmax logit** of class ``c`` (the input of its float32 ``probabilities``
softmax, which every bench head ends with), as in the paper: the gradient of a probability, or of a
log-probability, also pushes the other classes down and shrinks towards zero for a confident face, so its
map fades exactly where the model is surest. A head without that layer (a plugin's) is scored by its
log-probabilities instead. The fitted temperature only divides the logits, so it scales the gradients and
leaves every normalised map unchanged; it is ignored here.
"""

from __future__ import annotations

import numpy as np

from bench.errors import BenchError

SCORE_LAYER = "probabilities"


def feature_grid(model) -> tuple[int, int]:
    """``(H, W)`` of the model's backbone feature map, or a one-line error when there is no spatial map to
    explain (a 1x1 map, or features already pooled to a vector)."""
    shape = tuple(model.features.output.shape[1:])
    name = getattr(model, "name", "the model")
    if len(shape) != 3:
        raise BenchError(
            f"{name}'s backbone returns features of shape {shape}, not a spatial (H, W, C) map; Grad-CAM needs "
            "one: use a backbone that ends in a convolutional feature map"
        )
    if shape[0] * shape[1] <= 1:
        raise BenchError(
            f"{name}'s backbone feature map is {shape[0]}x{shape[1]}, so every class map is one pixel; retrain "
            "it at a larger input (e.g. --set data.image_size=96) for a spatial map to explain"
        )
    return int(shape[0]), int(shape[1])


def class_scores(head):
    """A function ``feature map -> (batch, K)`` class scores: the head's pre-softmax logits when its last
    layer is the ``probabilities`` softmax (every bench head), else its log-probabilities."""
    import keras
    from keras import ops

    layer = next((lay for lay in head.layers if lay.name == SCORE_LAYER), None)
    if layer is not None and getattr(getattr(layer, "activation", None), "__name__", "") == "softmax":
        logits = keras.Model(head.input, layer.input, name="head_logits")
        return lambda a: ops.cast(logits(a, training=False), "float32")
    return lambda a: ops.log(ops.clip(ops.cast(head(a, training=False), "float32"), 1e-7, 1.0))


def grad_cam(head, features: np.ndarray, class_indices) -> np.ndarray:
    """Grad-CAM maps of ``features`` for one class per face.

    Args:
        head: the model's head (``model.head``).
        features: the backbone feature maps ``(n, H, W, C)`` (``model.features`` of the faces).
        class_indices: ``(n,)`` the class explained for each face.

    Returns:
        ``(n, H, W)`` float32, non-negative, in the feature map's units (not normalised: averaging maps
        over faces and comparing their mass needs the raw values; :func:`normalise` scales for display).
    """
    from keras import ops

    from bench.explain.gradients import input_gradient

    features = np.asarray(features, dtype=np.float32)
    scores = class_scores(head)
    num_classes = int(head.outputs[0].shape[-1])
    onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(class_indices, dtype=int)]
    gradients = input_gradient(lambda a: ops.sum(scores(a) * ops.convert_to_tensor(onehot), axis=-1), features)
    weights = gradients.mean(axis=(1, 2))  # alpha: (n, C)
    return np.maximum(np.einsum("nhwc,nc->nhw", features, weights), 0.0).astype(np.float32)


def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map scaled to a maximum of 1 (an all-zero map stays zero): for display only."""
    maps = np.asarray(maps, dtype=np.float32)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    return maps / np.where(peak > 0, peak, 1.0)[:, None, None]


def upsample(maps: np.ndarray, size: int = 48) -> np.ndarray:
    """Maps ``(n, H, W)`` resized bilinearly to ``(n, size, size)``, the face's own grid, as Grad-CAM
    overlays them (OpenCV aligns pixel centres, so a map's cells land on the face pixels they cover)."""
    import cv2

    resized = [cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR) for m in np.asarray(maps, np.float32)]
    return np.stack(resized) if resized else np.zeros((0, size, size), np.float32)
