"""The study's hybrid head: channel + spatial attention, a transformer block over spatial positions,
and class-specific branches for the hard emotions, fused into a softmax."""

import keras
from keras import layers

from bench.heads._common import softmax_output
from bench.heads.layers import ChannelSpatialAttention, SpatialTransformerBlock
from bench.registry import HEADS

HARD_CLASSES = ("angry", "disgust", "fear", "sad")


@HEADS.register(description="channel+spatial attention, transformer block, class branches (the study's head)")
def hybrid(
    *,
    feature_shape,
    num_classes=7,
    projection_dim=0,
    reduction=8,
    attention_kernel=7,
    num_heads=8,
    key_dim=0,
    ffn_multiplier=4.0,
    transformer_dropout=0.3,
    branch_classes=HARD_CLASSES,
    branch_units=128,
    branch_gate=True,
    fusion_units=512,
    dropout=0.5,
    formulation="keras",
):
    """Args:
    feature_shape: (H, W, C) of the backbone's feature map.
    projection_dim: if > 0, a 1x1 convolution first maps C to this width, so the head has the same
        size whatever the backbone (0 keeps C, as the seed did).
    branch_gate: each class branch gates the pooled channels with its own sigmoid (the seed's
        intended branch, which its code silently replaced with the ungated one); False = ungated.
    formulation: how the attention and transformer layers compute: ``"keras"`` (Keras' own sub-layers)
        or ``"matmul"`` (the same function as fewer ops on the same variables; see
        :class:`~bench.heads.layers.SpatialTransformerBlock`). Either runs any saved weights.
    The other arguments size the attention, transformer, branches and fusion layers.
    """
    # Which names are classes depends on the data (FER+ adds contempt); bench.config.check_class_names
    # checks them against the data's classes before the model is built. Here they only name layers.
    bad = [c for c in branch_classes if not (isinstance(c, str) and c.isidentifier())]
    if bad:
        raise ValueError(f"branch_classes must be class names; received {bad}")
    inputs = keras.Input(feature_shape, name="features")
    x = inputs
    if projection_dim:
        x = layers.Conv2D(projection_dim, 1, activation="gelu", name="projection")(x)
    x = ChannelSpatialAttention(reduction, attention_kernel, formulation, name="channel_spatial_attention")(x)
    x = SpatialTransformerBlock(
        num_heads, key_dim, ffn_multiplier, transformer_dropout, formulation, name="transformer"
    )(x)
    pooled = layers.GlobalAveragePooling2D(name="pool")(x)
    branches = [pooled]
    for name in branch_classes:
        feats = pooled
        if branch_gate:
            gate = layers.Dense(pooled.shape[-1], activation="sigmoid", name=f"{name}_gate")(pooled)
            feats = layers.Multiply(name=f"{name}_gated")([pooled, gate])
        branches.append(layers.Dense(branch_units, activation="gelu", name=f"{name}_branch")(feats))
    x = layers.Concatenate(name="fusion_concat")(branches) if len(branches) > 1 else pooled
    x = layers.Dense(fusion_units, activation="gelu", name="fusion")(x)
    x = layers.Dropout(dropout, name="fusion_dropout")(x)
    return keras.Model(inputs, softmax_output(x, num_classes), name="head")
