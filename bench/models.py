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

from bench import CLASS_NAMES, INPUT_SHAPE
from bench.batchnorm import fuse_batchnorm, resolve_batchnorm
from bench.calibration import EPS
from bench.errors import BenchError
from bench.registry import BACKBONES, HEADS

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
    batchnorm: str = "keras"  # the BatchNorm kernel built: what model.batchnorm = "auto" resolved to

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


def _check_options(registry, kind: str, name: str, options: dict, fixed: tuple[str, ...]) -> None:
    """A one-line error for an option the factory does not take (``fixed`` are bench's own arguments)."""
    params = inspect.signature(registry.get(name).factory).parameters
    accepted = [p for p in params if p not in fixed]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise BenchError(f"{kind} '{name}' has no option '{unknown[0]}'; accepted: {', '.join(accepted)}")


@keras.saving.register_keras_serializable(package="bench")
class GrayToRGB(layers.Layer):
    """Gray -> 3 channels by repetition, so an RGB backbone sees the face unchanged in every channel.

    Input: (batch, H, W, 1); output: (batch, H, W, 3). A layer rather than ``Concatenate([x, x, x])`` so
    the adapter is a plain chain of one-input layers that :class:`FaceModel` can serialize as a list.
    """

    def call(self, x):
        return ops.concatenate([x, x, x], axis=-1)


def temper(probs, temperature: float):
    """``softmax(log(probs) / temperature)`` in ``keras.ops`` (computed in float32, returned in the dtype of
    ``probs``): :func:`bench.calibration.apply_temperature` inside a model."""
    logits = ops.log(ops.clip(ops.cast(probs, "float32"), EPS, 1.0)) / temperature
    return ops.cast(ops.softmax(logits, axis=-1), probs.dtype)


@keras.saving.register_keras_serializable(package="bench")
class FaceModel(keras.Model):
    """Raw faces -> class probabilities: input adapter, backbone, head, as attributes.

    Like keras-hub's task models (``ImageClassifier`` holds ``backbone``), the parts are reachable as
    ``model.adapter`` (faces -> backbone input), ``model.backbone``, ``model.head`` and
    ``model.features`` (faces -> backbone features, sharing the layers), all built here, once. The
    trainer freezes parts and caches features through them, never by layer name or graph surgery.

    The adapter layers stay at the top level of the graph (not in a nested model), so weight files
    written before this class existed load into it unchanged.

    Args:
        adapter_layers: one-input layers applied in order to the (batch, 48, 48, 1) faces.
        backbone: a model from ``BACKBONES``; its output is the feature map.
        head: a model from ``HEADS``; its output is (batch, num_classes) probabilities.
        class_names: what each output column means, saved with the model so ``bench predict`` and
            ``bench export`` name a FER+ model's 8 classes; files saved before it existed load with
            FER2013's 7.
        temperature: the softmax temperature fitted after training (``recipe.eval.calibrate``,
            :mod:`bench.calibration`): the model returns ``softmax(log(p) / temperature)`` of the head's
            probabilities ``p``; 1 (the default, and what files saved before it existed load with)
            returns ``p`` itself. A config float, not a weight, so weight files stay as they were.
    """

    def __init__(self, *, adapter_layers, backbone, head, class_names=CLASS_NAMES, temperature=1.0, **kwargs):
        inputs = keras.Input(INPUT_SHAPE, name="faces")
        x = inputs
        for layer in adapter_layers:
            x = layer(x)
        features = backbone(x)
        super().__init__(inputs=inputs, outputs=head(features), **kwargs)
        self.adapter_layers = list(adapter_layers)
        self.backbone, self.head = backbone, head
        self.class_names = tuple(class_names)
        if len(self.class_names) != self.output.shape[-1]:
            raise BenchError(
                f"class_names has {len(self.class_names)} names for a head of {self.output.shape[-1]} outputs"
            )
        self.adapter = keras.Model(inputs, x, name="adapter")
        self.features = keras.Model(inputs, features, name="features")
        self.temperature = 1.0
        self.set_temperature(temperature)

    def set_temperature(self, temperature: float) -> None:
        """Calibrate the model's output (see the class docstring); what it predicts afterwards, and saves,
        is tempered. The compiled predict and test steps read the old value when they were traced, so they
        are dropped."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
        if float(temperature) != self.temperature:
            self.temperature = float(temperature)
            self.predict_function = self.test_function = None

    def call(self, inputs, training=None, mask=None, **kwargs):
        probs = super().call(inputs, training=training, mask=mask, **kwargs)
        return probs if self.temperature == 1.0 else temper(probs, self.temperature)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "adapter_layers": [keras.saving.serialize_keras_object(layer) for layer in self.adapter_layers],
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "head": keras.saving.serialize_keras_object(self.head),
            "class_names": list(self.class_names),
            "temperature": self.temperature,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["adapter_layers"] = [
            keras.saving.deserialize_keras_object(c, custom_objects=custom_objects) for c in config["adapter_layers"]
        ]
        for part in ("backbone", "head"):
            config[part] = keras.saving.deserialize_keras_object(config[part], custom_objects=custom_objects)
        return cls(**config)


def _adapter_layers(size: int, channel_adapter: str, normalization: str) -> list:
    """Resize (when the backbone needs more than 48 pixels), gray -> 3 channels, the backbone's normalization."""
    chain = []
    if size != INPUT_SHAPE[0]:
        chain.append(layers.Resizing(size, size, interpolation="bicubic", name="resize"))
    if channel_adapter == "repeat":
        chain.append(GrayToRGB(name="gray_to_rgb"))
    else:
        chain.append(layers.Conv2D(3, 3, padding="same", name="channel_adapter"))
    norm = _normalization(normalization)
    return chain + ([norm] if norm is not None else [])


def build_model(
    *,
    backbone: str,
    head: str = "hybrid",
    image_size: int = 48,
    weights: str = "none",
    channel_adapter: str = "repeat",
    head_options: dict | None = None,
    backbone_options: dict | None = None,
    precision: str = "float32",
    class_names: tuple[str, ...] | None = None,
    batchnorm: str = "keras",
) -> tuple[FaceModel, ModelSpec]:
    """Build the full model.

    Args:
        backbone, head: registered names.
        image_size: side the faces are resized to (bicubic); raised to the backbone's minimum.
        weights: ``imagenet``, ``none`` or a weights file for the backbone.
        channel_adapter: ``repeat`` (gray copied to 3 channels) or ``learned`` (a 3x3 convolution
            initialised to the repetition, so training starts from the same point).
        head_options: keyword options of the head factory.
        backbone_options: keyword options of the backbone factory (e.g. mini_xception's ``separable_l2``).
        precision: a Keras dtype policy; set before any layer is built (the seed set it afterwards).
        class_names: the classes the head predicts, from the data (None: FER2013's 7).
        batchnorm: ``keras``, or ``fused`` for the backbone's BatchNorm as TensorFlow's fused kernel
            (:mod:`bench.batchnorm`; same function and weights, faster, TensorFlow only), or ``auto``
            (fused where TensorFlow runs the model, Keras' layer elsewhere).

    Returns:
        (model, spec): a :class:`FaceModel` and the sizes it was built with.
    """
    if channel_adapter not in ("repeat", "learned"):
        raise BenchError(f"channel_adapter must be repeat or learned; received {channel_adapter!r}")
    batchnorm = resolve_batchnorm(batchnorm)
    class_names = tuple(class_names or CLASS_NAMES)
    options = dict(head_options or {})
    _check_options(HEADS, "head", head, options, ("feature_shape", "num_classes"))
    backbone_kwargs = dict(backbone_options or {})
    _check_options(BACKBONES, "backbone", backbone, backbone_kwargs, ("input_shape", "weights"))
    info = BACKBONES.get(backbone).info
    size = effective_image_size(backbone, image_size)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        adapter = _adapter_layers(size, channel_adapter, info["normalization"])
        try:
            backbone_model = BACKBONES.create(backbone, input_shape=(size, size, 3), weights=weights, **backbone_kwargs)
        except (TypeError, ValueError) as exc:
            if not backbone_kwargs:
                raise
            raise BenchError(f"backbone '{backbone}': {exc}") from exc
        if batchnorm == "fused":
            backbone_model = fuse_batchnorm(backbone_model)
        feature_shape = tuple(int(d) for d in backbone_model.output.shape[1:])
        try:
            head_model = HEADS.create(head, feature_shape=feature_shape, num_classes=len(class_names), **options)
        except (TypeError, ValueError) as exc:
            raise BenchError(f"head '{head}': {exc}") from exc
        model = FaceModel(
            adapter_layers=adapter,
            backbone=backbone_model,
            head=head_model,
            class_names=class_names,
            name=f"{backbone}__{head}",
        )
    finally:
        keras.config.set_dtype_policy(previous)
    if channel_adapter == "learned":
        kernel = np.zeros((3, 3, 1, 3), dtype="float32")
        kernel[1, 1, 0, :] = 1.0
        conv = next(layer for layer in adapter if isinstance(layer, layers.Conv2D))
        conv.set_weights([kernel, np.zeros(3, dtype="float32")])
    return model, ModelSpec(backbone, head, size, int(image_size), feature_shape, batchnorm)


def register_serializable_layers() -> None:
    """Import every module that registers a bench layer with Keras, so a saved bench model loads in a
    fresh process (Keras finds registered classes by name; it does not import their modules)."""
    import bench.batchnorm  # noqa: F401
    import bench.data.augment  # noqa: F401
    import bench.heads.layers  # noqa: F401
    import bench.models  # noqa: F401
