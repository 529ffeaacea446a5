"""The one builder behind every ``keras.applications`` backbone: weights handling and naming."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.errors import BenchError

KERAS_CACHE = "~/.keras/models"


def imagenet_error(name: str, weights_file: str, reason: str = "") -> BenchError:
    """The one-line error for ImageNet weights that cannot be had offline."""
    why = f" ({reason})" if reason else ""
    return BenchError(
        f"{name}: ImageNet weights could not be downloaded{why}; copy {weights_file} into "
        f"{KERAS_CACHE}/, or use --weights none (train from scratch) or --weights PATH (a weights file)"
    )


def resolve_weights(name: str, weights: str, *, has_imagenet: bool, weights_file: str | None) -> str | None:
    """Map bench's ``weights`` value (``imagenet``, ``none``, a path) to Keras' ``weights`` argument."""
    if weights in ("none", "", None):
        return None
    if weights == "imagenet":
        if not has_imagenet:
            raise BenchError(
                f"{name} has no ImageNet weights; use --weights none (train from scratch) or --weights PATH"
            )
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BenchError(f"{name}: weights file '{path}' does not exist; expected imagenet, none or a file path")
    return str(path)


def load_backbone_weights(model, name: str, path: str | None):
    """Load a weights file into a from-scratch bench backbone (``path`` None: nothing to load)."""
    if path:
        try:
            model.load_weights(path)
        except Exception as exc:
            raise BenchError(f"{name}: cannot load weights from '{path}': {str(exc).splitlines()[0][:160]}") from exc
    return model


def build_application(
    app: Callable, *, name: str, input_shape: tuple[int, int, int], weights: str, weights_file: str, **kwargs
):
    """Call a ``keras.applications`` constructor with ``include_top=False`` and name the result
    ``backbone`` so that recipes can address it."""
    keras_weights = resolve_weights(name, weights, has_imagenet=True, weights_file=weights_file)
    try:
        model = app(include_top=False, weights=keras_weights, input_shape=input_shape, **kwargs)
    except BenchError:
        raise
    except Exception as exc:  # Keras raises a plain Exception ("URL fetch failure ...") offline
        if keras_weights == "imagenet":
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise imagenet_error(name, weights_file, first_line[:120]) from exc
        if keras_weights is not None:
            raise BenchError(
                f"{name}: cannot load weights from '{keras_weights}': {str(exc).splitlines()[0][:160]}"
            ) from exc
        raise
    model.name = "backbone"
    if keras_weights is None:
        set_batchnorm_momentum(model, FROM_SCRATCH_BN_MOMENTUM)
    return model


FROM_SCRATCH_BN_MOMENTUM = 0.9
"""Keras applications use BatchNorm momentum 0.99 (MobileNetV3: 0.999), tuned for long ImageNet runs. From scratch in a
few thousand steps the moving statistics lag the weights so far that inference collapses to one class
(MobileNetV3Small on FER2013, cpu recipe: every test image "surprise"); 0.9 follows them within ~20 steps."""


def set_batchnorm_momentum(model, momentum: float) -> int:
    """Set the momentum of every BatchNormalization layer in ``model``; returns how many were changed."""
    import keras

    changed = 0
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            changed += 1
    return changed


def all_layers(model):
    """Every layer of ``model``, descending into nested models (public ``layers`` only, no private API)."""
    import keras

    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)
