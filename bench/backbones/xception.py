"""Xception (Chollet, 2017); inputs scaled to [-1, 1]; needs at least 71x71."""

import keras

from bench.backbones._keras_apps import build_application
from bench.registry import BACKBONES

WEIGHTS_FILE = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"


@BACKBONES.register(min_size=71, normalization="tf", imagenet=True, weights_file=WEIGHTS_FILE)
def xception(*, input_shape=(299, 299, 3), weights="none"):
    return build_application(
        keras.applications.Xception,
        name="xception",
        input_shape=input_shape,
        weights=weights,
        weights_file=WEIGHTS_FILE,
    )
