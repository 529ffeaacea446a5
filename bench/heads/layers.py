"""Serializable attention layers for the hybrid head (``keras.ops`` only, no Lambda layers)."""

from __future__ import annotations

import warnings

import keras
from keras import layers, ops

# With a 1x1 feature map (small inputs) attention has one key and Keras warns that its softmax is
# constant. That is expected here, not a bug.
warnings.filterwarnings("ignore", message="You are using a softmax over axis")


@keras.saving.register_keras_serializable(package="bench")
class ChannelSpatialAttention(layers.Layer):
    """CBAM-style attention: channel attention, then spatial attention, then a residual add.

    Channel: a shared two-layer MLP (``C // reduction`` hidden units) over global average- and
    max-pooled features, summed, sigmoid. Spatial: a ``kernel_size`` convolution over the channel-wise
    mean and max maps, sigmoid. Output = input + input * channel_gate * spatial_gate.

    Input/output: (batch, H, W, C).

    Example:
        >>> ChannelSpatialAttention(reduction=8)(keras.ops.ones((2, 3, 3, 16))).shape
        (2, 3, 3, 16)
    """

    def __init__(self, reduction: int = 8, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        if reduction < 1 or kernel_size < 1:
            raise ValueError(
                f"reduction and kernel_size must be >= 1; received reduction={reduction}, kernel_size={kernel_size}"
            )
        self.reduction, self.kernel_size = reduction, kernel_size

    def build(self, input_shape):
        channels = input_shape[-1]
        self.mlp_hidden = layers.Dense(
            max(1, channels // self.reduction), activation="relu", name="mlp_hidden", dtype=self.dtype_policy
        )
        self.mlp_out = layers.Dense(channels, name="mlp_out", dtype=self.dtype_policy)
        self.spatial_conv = layers.Conv2D(
            1, self.kernel_size, padding="same", name="spatial_conv", dtype=self.dtype_policy
        )
        pooled = (input_shape[0], 1, 1, channels)
        self.mlp_hidden.build(pooled)
        self.mlp_out.build(pooled[:-1] + (max(1, channels // self.reduction),))
        self.spatial_conv.build(tuple(input_shape[:-1]) + (2,))

    def call(self, x):
        avg = ops.mean(x, axis=(1, 2), keepdims=True)
        mx = ops.max(x, axis=(1, 2), keepdims=True)
        channel_gate = ops.sigmoid(self.mlp_out(self.mlp_hidden(avg)) + self.mlp_out(self.mlp_hidden(mx)))
        refined = x * channel_gate
        maps = ops.concatenate(
            [ops.mean(refined, axis=-1, keepdims=True), ops.max(refined, axis=-1, keepdims=True)], axis=-1
        )
        spatial_gate = ops.sigmoid(self.spatial_conv(maps))
        return x + refined * spatial_gate

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="bench")
class SpatialTransformerBlock(layers.Layer):
    """A post-norm transformer block over the H*W spatial positions of a feature map.

    Multi-head self-attention (``num_heads``, ``key_dim`` per head, default C // num_heads) with a
    residual add and LayerNorm, then a feed-forward of two 1x1 convolutions (``ffn_multiplier * C``
    hidden, GELU) with dropout, residual add and LayerNorm. No positional encoding: the CNN feature map
    already carries position.

    Input/output: (batch, H, W, C).
    """

    def __init__(
        self, num_heads: int = 8, key_dim: int = 0, ffn_multiplier: float = 4.0, dropout: float = 0.3, **kwargs
    ):
        super().__init__(**kwargs)
        if num_heads < 1 or ffn_multiplier <= 0 or not 0 <= dropout < 1:
            raise ValueError(
                f"need num_heads >= 1, ffn_multiplier > 0, 0 <= dropout < 1; received "
                f"num_heads={num_heads}, ffn_multiplier={ffn_multiplier}, dropout={dropout}"
            )
        self.num_heads, self.key_dim, self.ffn_multiplier, self.dropout = num_heads, key_dim, ffn_multiplier, dropout

    def build(self, input_shape):
        _, h, w, c = input_shape
        key_dim = self.key_dim or max(1, c // self.num_heads)
        self.attention = layers.MultiHeadAttention(
            self.num_heads, key_dim, dropout=self.dropout, name="mhsa", dtype=self.dtype_policy
        )
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1", dtype=self.dtype_policy)
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2", dtype=self.dtype_policy)
        self.ffn_in = layers.Conv2D(
            max(1, int(c * self.ffn_multiplier)), 1, activation="gelu", name="ffn_in", dtype=self.dtype_policy
        )
        self.ffn_out = layers.Conv2D(c, 1, name="ffn_out", dtype=self.dtype_policy)
        self.ffn_dropout = layers.Dropout(self.dropout, dtype=self.dtype_policy)
        tokens = (input_shape[0], h * w, c)
        self.attention.build(tokens, tokens)
        self.norm1.build(tokens)
        self.ffn_in.build(input_shape)
        self.ffn_out.build(tuple(input_shape[:-1]) + (max(1, int(c * self.ffn_multiplier)),))
        self.norm2.build(input_shape)

    def call(self, x, training=None):
        shape = ops.shape(x)
        tokens = ops.reshape(x, (shape[0], shape[1] * shape[2], shape[3]))
        attended = self.attention(tokens, tokens, training=training)
        tokens = self.norm1(tokens + attended)
        x = ops.reshape(tokens, shape)
        ffn = self.ffn_dropout(self.ffn_out(self.ffn_in(x)), training=training)
        return self.norm2(x + ffn)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "ffn_multiplier": self.ffn_multiplier,
            "dropout": self.dropout,
        }
