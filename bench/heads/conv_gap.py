"""mini-Xception's own classifier (Arriaga et al., 2017): a 3x3 convolution to one map per class, global
average pooling of each map, softmax. No dense layer: 8,071 parameters on a 128-channel feature map."""

import keras
from keras import layers

from bench.registry import HEADS


@HEADS.register(description="3x3 conv to one map per class, global average pooling, softmax (mini-Xception's)")
def conv_gap(*, feature_shape, num_classes=7):
    inputs = keras.Input(feature_shape, name="features")
    x = layers.Conv2D(num_classes, 3, padding="same", name="class_maps")(inputs)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Activation("softmax", dtype="float32", name="probabilities")(x), name="head")
