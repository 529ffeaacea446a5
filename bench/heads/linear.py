"""A linear probe: global average pooling -> dropout -> softmax."""

import keras
from keras import layers

from bench.heads._common import softmax_output
from bench.registry import HEADS


@HEADS.register(description="global average pooling, dropout, softmax (a linear probe)")
def linear(*, feature_shape, num_classes=7, dropout=0.2):
    inputs = keras.Input(feature_shape, name="features")
    x = layers.GlobalAveragePooling2D(name="pool")(inputs)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, softmax_output(x, num_classes), name="head")
