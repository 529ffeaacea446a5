"""The seed study's baseline CNN: four 3x3 conv blocks (32, 64, 128, 256 filters, stride 1, same
padding, ReLU), 2x2 max-pooling after the first three. Inputs scaled to [0, 1].

Each block is conv -> BatchNorm -> ReLU by default: without BatchNorm this plain stack sat at the
uniform prediction for several epochs from scratch on 48x48 faces (measured on the synthetic set);
``batch_norm=False`` gives the plain conv -> ReLU blocks. BatchNorm momentum is 0.9 rather than
Keras' 0.99 so the inference statistics keep up within the few hundred steps of a short CPU run.
"""

import keras
from keras import layers

from bench.backbones._keras_apps import load_backbone_weights, resolve_weights
from bench.registry import BACKBONES


@BACKBONES.register(min_size=8, normalization="unit", imagenet=False, weights_file=None)
def baseline_cnn(*, input_shape=(48, 48, 3), weights="none", filters=(32, 64, 128, 256), batch_norm=True):
    path = resolve_weights("baseline_cnn", weights, has_imagenet=False, weights_file=None)
    inputs = keras.Input(input_shape)
    x = inputs
    for i, width in enumerate(filters):
        x = layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm, name=f"block{i + 1}_conv")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=0.9, name=f"block{i + 1}_bn")(x)
        x = layers.Activation("relu", name=f"block{i + 1}_relu")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
    return load_backbone_weights(keras.Model(inputs, x, name="backbone"), "baseline_cnn", path)
