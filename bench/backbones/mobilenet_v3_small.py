"""MobileNetV3Small (Howard et al., 2019); rescales 0-255 inputs itself (``include_preprocessing``)."""

import keras

from bench.backbones._keras_apps import build_application
from bench.registry import BACKBONES

WEIGHTS_FILE = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"


@BACKBONES.register(min_size=32, normalization="builtin", imagenet=True, weights_file=WEIGHTS_FILE)
def mobilenet_v3_small(*, input_shape=(224, 224, 3), weights="none"):
    return build_application(
        keras.applications.MobileNetV3Small,
        name="mobilenet_v3_small",
        input_shape=input_shape,
        weights=weights,
        weights_file=WEIGHTS_FILE,
        include_preprocessing=True,
    )
