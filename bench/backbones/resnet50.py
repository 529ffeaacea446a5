"""ResNet50 (He et al., 2016) from keras.applications; caffe-style input normalization."""

import keras

from bench.backbones._keras_apps import build_application
from bench.registry import BACKBONES

WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


@BACKBONES.register(min_size=32, normalization="caffe", imagenet=True, weights_file=WEIGHTS_FILE)
def resnet50(*, input_shape=(224, 224, 3), weights="none"):
    return build_application(
        keras.applications.ResNet50,
        name="resnet50",
        input_shape=input_shape,
        weights=weights,
        weights_file=WEIGHTS_FILE,
    )
