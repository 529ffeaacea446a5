"""EfficientNetB3 (Tan & Le, 2019); rescales and normalizes 0-255 inputs itself."""

import keras

from bench.backbones._keras_apps import build_application
from bench.registry import BACKBONES

WEIGHTS_FILE = "efficientnetb3_notop.h5"


@BACKBONES.register(min_size=32, normalization="builtin", imagenet=True, weights_file=WEIGHTS_FILE)
def efficientnet_b3(*, input_shape=(224, 224, 3), weights="none"):
    return build_application(
        keras.applications.EfficientNetB3,
        name="efficientnet_b3",
        input_shape=input_shape,
        weights=weights,
        weights_file=WEIGHTS_FILE,
    )
