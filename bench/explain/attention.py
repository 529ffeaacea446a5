"""The hybrid head's own spatial attention map: the sigmoid gate inside its
:class:`~bench.heads.layers.ChannelSpatialAttention`, per feature-map position.

Read through public Keras APIs only: a sub-model of the head from its input to the attention layer's
input, then the layer's own sub-layers (``mlp_hidden``, ``mlp_out``, ``spatial_conv``) called on that, as
its ``call`` does. The layer returns only its refined features, not its gates, and its class belongs to
saved models, so the gate is recomputed here rather than added to the layer; a test checks that the gates
recomputed here rebuild exactly what the layer returns, so the two cannot drift apart.
"""

from __future__ import annotations

import numpy as np


def attention_layer(head):
    """The head's first ChannelSpatialAttention layer, or None (heads without one have no map to show)."""
    from bench.heads.layers import ChannelSpatialAttention

    return next((layer for layer in head.layers if isinstance(layer, ChannelSpatialAttention)), None)


def attention_gates(layer, x):
    """``(channel_gate, spatial_gate)`` of a built ChannelSpatialAttention for its input ``x``
    ``(batch, H, W, C)``: ``(batch, 1, 1, C)`` and ``(batch, H, W, 1)``, both in 0-1; the layer returns
    ``x + x * channel_gate * spatial_gate``. Either formulation computes these same gates."""
    from keras import ops

    avg = ops.mean(x, axis=(1, 2), keepdims=True)
    mx = ops.max(x, axis=(1, 2), keepdims=True)
    channel_gate = ops.sigmoid(layer.mlp_out(layer.mlp_hidden(avg)) + layer.mlp_out(layer.mlp_hidden(mx)))
    refined = x * channel_gate
    maps = ops.concatenate(
        [ops.mean(refined, axis=-1, keepdims=True), ops.max(refined, axis=-1, keepdims=True)], axis=-1
    )
    return channel_gate, ops.sigmoid(layer.spatial_conv(maps))


def spatial_attention(head, features: np.ndarray) -> np.ndarray | None:
    """The spatial gate of the head's attention layer for each face, ``(n, H, W)`` float32 in 0-1, or None
    when the head has no such layer.

    Args:
        head: the model's head (``model.head``), a functional Keras model.
        features: the backbone feature maps ``(n, H, W, C)`` the head takes.
    """
    import keras
    from keras import ops

    layer = attention_layer(head)
    if layer is None:
        return None
    before = keras.Model(head.input, layer.input, name="head_until_attention")
    x = before(np.asarray(features, dtype=np.float32), training=False)
    _, spatial = attention_gates(layer, x)
    return np.asarray(ops.convert_to_numpy(ops.cast(spatial, "float32")))[..., 0]
