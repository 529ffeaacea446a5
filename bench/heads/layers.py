"""Serializable attention layers for the hybrid head (``keras.ops`` only, no Lambda layers)."""

from __future__ import annotations

import math
import warnings

import keras
from keras import layers, ops

# With a 1x1 feature map (small inputs) attention has one key and Keras warns that its softmax is
# constant. That is expected here, not a bug.
warnings.filterwarnings("ignore", message="You are using a softmax over axis")

# "keras": call the Keras sub-layers as built. "matmul": the same function written as a few
# ``keras.ops`` calls on those sub-layers' public variables, for speed (issue 13). Both read the same
# variables, so either runs any saved weights.
FORMULATIONS = ("keras", "matmul")


def check_formulation(formulation: str) -> str:
    """``formulation`` if it is one of :data:`FORMULATIONS`, else a ``ValueError`` naming them."""
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be one of {', '.join(FORMULATIONS)}; received formulation={formulation!r}")
    return formulation


@keras.saving.register_keras_serializable(package="bench")
class ChannelSpatialAttention(layers.Layer):
    """CBAM-style attention: channel attention, then spatial attention, then a residual add.

    Channel: a shared two-layer MLP (``C // reduction`` hidden units) over global average- and
    max-pooled features, summed, sigmoid. Spatial: a ``kernel_size`` convolution over the channel-wise
    mean and max maps, sigmoid. Output = input + input * channel_gate * spatial_gate.

    ``formulation="matmul"`` runs the shared MLP once on the two pooled vectors stacked, and its output
    layer once on the sum of their hidden activations (plus its bias twice: the output layer is linear),
    instead of the whole MLP twice; same function, fewer ops.

    Input/output: (batch, H, W, C).

    Example:
        >>> ChannelSpatialAttention(reduction=8)(keras.ops.ones((2, 3, 3, 16))).shape
        (2, 3, 3, 16)
    """

    def __init__(self, reduction: int = 8, kernel_size: int = 7, formulation: str = "keras", **kwargs):
        super().__init__(**kwargs)
        if reduction < 1 or kernel_size < 1:
            raise ValueError(
                f"reduction and kernel_size must be >= 1; received reduction={reduction}, kernel_size={kernel_size}"
            )
        self.reduction, self.kernel_size = reduction, kernel_size
        self.formulation = check_formulation(formulation)

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
        if self.formulation == "keras":
            channel_gate = ops.sigmoid(self.mlp_out(self.mlp_hidden(avg)) + self.mlp_out(self.mlp_hidden(mx)))
        else:
            hidden = ops.sum(self.mlp_hidden(ops.concatenate([avg, mx], axis=1)), axis=1, keepdims=True)
            channel_gate = ops.sigmoid(self.mlp_out(hidden) + self.mlp_out.bias)
        refined = x * channel_gate
        maps = ops.concatenate(
            [ops.mean(refined, axis=-1, keepdims=True), ops.max(refined, axis=-1, keepdims=True)], axis=-1
        )
        spatial_gate = ops.sigmoid(self.spatial_conv(maps))
        return x + refined * spatial_gate

    def get_config(self):
        return {
            **super().get_config(),
            "reduction": self.reduction,
            "kernel_size": self.kernel_size,
            "formulation": self.formulation,
        }


@keras.saving.register_keras_serializable(package="bench")
class SpatialTransformerBlock(layers.Layer):
    """A post-norm transformer block over the H*W spatial positions of a feature map.

    Multi-head self-attention (``num_heads``, ``key_dim`` per head, default C // num_heads) with a
    residual add and LayerNorm, then a feed-forward of two 1x1 convolutions (``ffn_multiplier * C``
    hidden, GELU) with dropout, residual add and LayerNorm. No positional encoding: the CNN feature map
    already carries position.

    ``formulation``: ``"keras"`` calls Keras' ``MultiHeadAttention`` and the two ``Conv2D`` layers;
    ``"matmul"`` computes the same function from those layers' public variables on the (batch * H * W, C)
    token view: one matmul for the query, key and value projections together (the 1/sqrt(key_dim) scale
    folded into the query kernel), scores and context as batched matmuls, a plain softmax, the output
    projection and the FFN as matmuls with the 1x1 kernels. Same variables, so a model saved with either
    runs with the other. In training it draws its dropout masks from the FFN's Dropout layer (same rate
    as the attention's): another random stream than Keras', the same distribution.

    Input/output: (batch, H, W, C).

    Example:
        >>> SpatialTransformerBlock(num_heads=2, formulation="matmul")(keras.ops.ones((2, 3, 3, 16))).shape
        (2, 3, 3, 16)
    """

    def __init__(
        self,
        num_heads: int = 8,
        key_dim: int = 0,
        ffn_multiplier: float = 4.0,
        dropout: float = 0.3,
        formulation: str = "keras",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_heads < 1 or ffn_multiplier <= 0 or not 0 <= dropout < 1:
            raise ValueError(
                f"need num_heads >= 1, ffn_multiplier > 0, 0 <= dropout < 1; received "
                f"num_heads={num_heads}, ffn_multiplier={ffn_multiplier}, dropout={dropout}"
            )
        self.num_heads, self.key_dim, self.ffn_multiplier, self.dropout = num_heads, key_dim, ffn_multiplier, dropout
        self.formulation = check_formulation(formulation)

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
        if self.formulation == "matmul":
            return self.matmul_call(x, training)
        shape = ops.shape(x)
        tokens = ops.reshape(x, (shape[0], shape[1] * shape[2], shape[3]))
        attended = self.attention(tokens, tokens, training=training)
        tokens = self.norm1(tokens + attended)
        x = ops.reshape(tokens, shape)
        ffn = self.ffn_dropout(self.ffn_out(self.ffn_in(x)), training=training)
        return self.norm2(x + ffn)

    def matmul_call(self, x, training=None):
        """The ``"matmul"`` formulation of :meth:`call`: the same function on the same variables."""
        shape = ops.shape(x)
        tokens = ops.reshape(x, (-1, shape[3]))  # (batch * H * W, C): LayerNorm and the FFN act per token
        tokens = self.norm1(tokens + self.self_attention(tokens, shape[1] * shape[2], training))
        hidden = ops.matmul(tokens, ops.squeeze(self.ffn_in.kernel, (0, 1))) + self.ffn_in.bias
        hidden = ops.gelu(hidden, approximate=False)  # Conv2D(activation="gelu") is the exact (erf) GELU
        ffn = ops.matmul(hidden, ops.squeeze(self.ffn_out.kernel, (0, 1))) + self.ffn_out.bias
        return ops.reshape(self.norm2(tokens + self.ffn_dropout(ffn, training=training)), shape)

    def self_attention(self, tokens, length: int, training=None):
        """What ``self.attention(t, t)`` computes, on (batch * length, C) tokens, from its public
        projection layers (EinsumDense kernels (C, heads, key_dim) and (heads, key_dim, C), biases)."""
        mha = self.attention
        heads, width = mha.num_heads, mha.num_heads * mha.key_dim
        scale = 1.0 / math.sqrt(mha.key_dim)  # Keras scales the projected query; here its kernel and bias
        q, k, v = mha.query_dense, mha.key_dense, mha.value_dense
        kernels = [ops.reshape(q.kernel, (-1, width)) * scale] + [ops.reshape(d.kernel, (-1, width)) for d in (k, v)]
        biases = [ops.reshape(q.bias, (width,)) * scale] + [ops.reshape(d.bias, (width,)) for d in (k, v)]
        kernel, bias = ops.concatenate(kernels, axis=1), ops.concatenate(biases)
        qkv = ops.reshape(ops.matmul(tokens, kernel) + bias, (-1, length, 3, heads, mha.key_dim))
        q, k, v = ops.unstack(ops.transpose(qkv, (2, 0, 3, 1, 4)), 3)  # each (batch, heads, length, key_dim)
        probs = self.ffn_dropout(ops.softmax(ops.einsum("bnqd,bnkd->bnqk", q, k), axis=-1), training=training)
        context = ops.reshape(ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3)), (-1, width))
        out = mha.output_dense
        return ops.matmul(context, ops.reshape(out.kernel, (width, -1))) + out.bias

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "ffn_multiplier": self.ffn_multiplier,
            "dropout": self.dropout,
            "formulation": self.formulation,
        }
