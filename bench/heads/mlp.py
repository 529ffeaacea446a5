"""The seed's baseline-CNN head: global average pooling -> Dense 512 -> Dense 256 -> softmax."""

import keras
from keras import layers

from bench.heads._common import softmax_output
from bench.registry import HEADS


@HEADS.register(description="global average pooling, Dense 512 -> 256 with dropout (the seed's CNN head)")
def mlp(*, feature_shape, num_classes=7, units=(512, 256), dropout=0.5):
    inputs = keras.Input(feature_shape, name="features")
    x = layers.GlobalAveragePooling2D(name="pool")(inputs)
    for i, width in enumerate(units):
        x = layers.Dense(width, activation="relu", name=f"dense{i + 1}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i + 1}")(x)
    return keras.Model(inputs, softmax_output(x, num_classes), name="head")
