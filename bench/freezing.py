"""Freeze and unfreeze parts of a bench model, with depth bands that mean the same for every backbone.

A band is a pair of fractions of backbone depth counted from the top: ``(0.0, 0.09)`` is the deepest
9 % of the backbone's layers. For ResNet50's 175 layers, (0, .09), (.09, .20), (.20, .43) are the
seed's hard-coded layers 160-175, 140-160 and 100-140.
"""

from __future__ import annotations

import math

from keras import layers


def band_indices(n_layers: int, low: float, high: float) -> tuple[int, int]:
    """``[start, end)`` layer indices of the band ``(low, high)`` of depth fractions from the top."""
    if not 0 <= low < high <= 1:
        raise ValueError(f"need 0 <= low < high <= 1; received low={low}, high={high}")

    def index(fraction: float) -> int:
        return math.ceil(round(n_layers * (1 - fraction), 6))

    return index(high), index(low)


def freeze_backbone(model) -> None:
    """Train the head only: the backbone (and a learned channel adapter) are frozen.

    ``model``: a :class:`bench.models.FaceModel` (this module reads its ``adapter``, ``backbone``, ``head``)."""
    model.backbone.trainable = False
    model.adapter.trainable = False
    model.head.trainable = True


def unfreeze_all(model) -> None:
    """Everything trains, BatchNorm included (training from scratch, or full fine-tuning)."""
    model.trainable = True
    # Set the parts explicitly: a nested model frozen earlier does not always follow its parent's flag.
    for part in (model.backbone, model.head, model.adapter):
        part.trainable = True


def unfreeze_band(model, low: float, high: float, *, pretrained: bool) -> list[str]:
    """Train the head plus the backbone layers in the depth band ``(low, high)``.

    BatchNormalization layers stay frozen (inference mode) when the backbone is pretrained, the usual
    Keras fine-tuning practice; from scratch they train with their band. Returns the names of the
    backbone layers made trainable.
    """
    backbone = model.backbone
    start, end = band_indices(len(backbone.layers), low, high)
    backbone.trainable = True
    chosen = []
    for i, layer in enumerate(backbone.layers):
        on = start <= i < end and not (pretrained and isinstance(layer, layers.BatchNormalization))
        layer.trainable = on
        if on:
            chosen.append(layer.name)
    model.adapter.trainable = False
    model.head.trainable = True
    return chosen


def apply_phase_trainability(model, train: str, band: tuple[float, float], *, pretrained: bool) -> None:
    """Set trainable flags for a recipe phase's ``train`` value: ``head``, ``all`` or ``band``.

    Under a distribution (``run.devices`` above 1, :mod:`bench.devices`) the model's compiled steps are
    dropped too: Keras' JAX trainer builds each step with the layout of the trainable and non-trainable
    variable lists of that moment, and a predict step built in one phase failed in the next ("pytree
    structure error ... out_shardings", seen on the smoke recipe on two devices). Each is rebuilt on its
    next use; on one device nothing changes."""
    import keras

    if train == "head":
        freeze_backbone(model)
    elif train == "all":
        unfreeze_all(model)
    elif train == "band":
        unfreeze_band(model, *band, pretrained=pretrained)
    else:
        raise ValueError(f"train must be head, all or band; received {train!r}")
    if keras.distribution.distribution() is not None:
        model.train_function = model.test_function = model.predict_function = None
