"""Backbone + head + input adapter -> one ``keras.Model`` that takes raw 48x48x1 faces (0-255).

Everything a saved model needs lives inside its graph: resizing, grayscale -> 3 channels, and the
backbone's own normalization. (The seed kept preprocessing outside the model and its demo applied
ResNet preprocessing twice.)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from bench import NUM_CLASSES
from bench.errors import BenchError
from bench.registry import BACKBONES, HEADS

INPUT_SHAPE = (48, 48, 1)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="bench")
class CaffeNormalization(layers.Layer):
    """RGB -> BGR and ImageNet mean subtraction (``keras.applications.resnet.preprocess_input``).

    Input/output: (batch, H, W, 3), input values 0-255.
    """

    def call(self, x):
        return ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=x.dtype)


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`build_model` built: the sizes actually used and a note when a size was raised."""

    backbone: str
    head: str
    image_size: int
    requested_image_size: int
    feature_shape: tuple[int, int, int]

    @property
    def note(self) -> str:
        if self.image_size == self.requested_image_size:
            return ""
        return (
            f"{self.backbone} needs at least {self.image_size}x{self.image_size}: "
            f"image size raised from {self.requested_image_size} to {self.image_size}"
        )


def effective_image_size(backbone: str, image_size: int) -> int:
    """The image size a backbone will run at: ``image_size`` raised to its minimum."""
    return max(int(image_size), BACKBONES.get(backbone).info["min_size"])


def _normalization(kind: str):
    if kind == "caffe":
        return CaffeNormalization(name="normalize_caffe")
    if kind == "tf":
        return layers.Rescaling(1 / 127.5, offset=-1.0, name="normalize_tf")
    if kind == "unit":
        return layers.Rescaling(1 / 255.0, name="normalize_unit")
    if kind == "builtin":
        return None
    raise ValueError(f"unknown normalization {kind!r}")


def _check_options(head: str, options: dict) -> None:
    params = inspect.signature(HEADS.get(head).factory).parameters
    accepted = [p for p in params if p not in ("feature_shape", "num_classes")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise BenchError(f"head '{head}' has no option '{unknown[0]}'; accepted: {', '.join(accepted)}")


def build_model(
    *,
    backbone: str,
    head: str = "hybrid",
    image_size: int = 48,
    weights: str = "none",
    channel_adapter: str = "repeat",
    head_options: dict | None = None,
    precision: str = "float32",
    num_classes: int = NUM_CLASSES,
) -> tuple[keras.Model, ModelSpec]:
    """Build the full model.

    Args:
        backbone, head: registered names.
        image_size: side the faces are resized to (bicubic); raised to the backbone's minimum.
        weights: ``imagenet``, ``none`` or a weights file for the backbone.
        channel_adapter: ``repeat`` (gray copied to 3 channels) or ``learned`` (a 3x3 convolution
            initialised to the repetition, so training starts from the same point).
        head_options: keyword options of the head factory.
        precision: a Keras dtype policy; set before any layer is built (the seed set it afterwards).

    Returns:
        (model, spec). The model's sub-models ``backbone`` and ``head`` are reachable with ``get_layer``.
    """
    if channel_adapter not in ("repeat", "learned"):
        raise BenchError(f"channel_adapter must be repeat or learned; received {channel_adapter!r}")
    options = dict(head_options or {})
    _check_options(head, options)
    info = BACKBONES.get(backbone).info
    size = effective_image_size(backbone, image_size)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        inputs = keras.Input(INPUT_SHAPE, name="faces")
        x = inputs
        if size != INPUT_SHAPE[0]:
            x = layers.Resizing(size, size, interpolation="bicubic", name="resize")(x)
        if channel_adapter == "repeat":
            x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
        else:
            x = layers.Conv2D(3, 3, padding="same", name="channel_adapter")(x)
        norm = _normalization(info["normalization"])
        if norm is not None:
            x = norm(x)
        backbone_model = BACKBONES.create(backbone, input_shape=(size, size, 3), weights=weights)
        features = backbone_model(x)
        feature_shape = tuple(int(d) for d in features.shape[1:])
        try:
            head_model = HEADS.create(head, feature_shape=feature_shape, num_classes=num_classes, **options)
        except (TypeError, ValueError) as exc:
            raise BenchError(f"head '{head}': {exc}") from exc
        outputs = head_model(features)
        model = keras.Model(inputs, outputs, name=f"{backbone}__{head}")
    finally:
        keras.config.set_dtype_policy(previous)
    if channel_adapter == "learned":
        kernel = np.zeros((3, 3, 1, 3), dtype="float32")
        kernel[1, 1, 0, :] = 1.0
        model.get_layer("channel_adapter").set_weights([kernel, np.zeros(3, dtype="float32")])
    return model, ModelSpec(backbone, head, size, int(image_size), feature_shape)


def register_serializable_layers() -> None:
    """Import every module that registers a bench layer with Keras, so a saved bench model loads in a
    fresh process (Keras finds registered classes by name; it does not import their modules)."""
    import bench.data.augment  # noqa: F401
    import bench.heads.layers  # noqa: F401
