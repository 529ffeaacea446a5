"""The seed study's two views inside the backbone: its first layer's kernels, and the feature maps one of
its blocks computes for one face. Both read the backbone through public Keras APIs (its layers' kernels; a
sub-model of the backbone up to a named layer)."""

from __future__ import annotations

import difflib

import numpy as np

from bench.errors import BenchError

CONVOLUTIONS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")


def first_kernels(model) -> tuple[str, np.ndarray]:
    """``(layer name, kernels (n, kh, kw))`` of the backbone's first convolution, one kernel per output
    channel, summed over its input channels: bench feeds every backbone the gray face repeated in 3
    channels, so the sum is exactly the filter each channel applies to the face. A separable or depthwise
    first layer shows its depthwise kernels."""
    import keras

    for layer in model.backbone.layers:
        if type(layer).__name__ in CONVOLUTIONS:
            name = "depthwise_kernel" if hasattr(layer, "depthwise_kernel") else "kernel"
            kernel = np.asarray(keras.ops.convert_to_numpy(getattr(layer, name)), dtype=np.float32)
            return layer.name, np.moveaxis(kernel.sum(axis=2), -1, 0)  # (kh, kw, in, out) -> (out, kh, kw)
    raise BenchError(f"{model.name}'s backbone has no convolution to show the kernels of; --kernels needs one")


def block_names(model) -> list[str]:
    """The backbone's layers whose output is a spatial map (H, W, C): what ``--block`` can name."""
    return [layer.name for layer in model.backbone.layers[1:] if len(layer.output.shape) == 4]  # [0]: the input


def feature_maps(model, face: np.ndarray, block: str | None = None, limit: int = 32) -> tuple[str, np.ndarray]:
    """``(block, maps (k, H, W))``: the ``limit`` most active channels (by mean activation) of the backbone
    layer ``block`` (default: the backbone's output) for one raw 0-255 ``face`` (48, 48)."""
    import keras

    names = block_names(model)
    block = block or model.backbone.layers[-1].name
    if block not in names:
        close = difflib.get_close_matches(block, names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise BenchError(
            f"the backbone has no block '{block}' with a spatial output; {hint}--block takes a layer name such as "
            f"{', '.join(names[:3])} ... {names[-1]}"
        )
    upto = keras.Model(model.backbone.input, model.backbone.get_layer(block).output)
    x = model.adapter(np.asarray(face, np.float32).reshape(1, 48, 48, 1), training=False)
    maps = np.asarray(keras.ops.convert_to_numpy(upto(x, training=False)), dtype=np.float32)[0]  # (H, W, C)
    order = np.argsort(-maps.mean(axis=(0, 1)), kind="stable")[:limit]
    return block, np.moveaxis(maps[..., order], -1, 0)
