"""mini-Xception (Arriaga, Valdenegro-Toro & Plöger, 2017, "Real-time Convolutional Neural Networks for
Emotion and Gender Classification"): the ~60 k-parameter model behind the ``fer`` package, reported at
66 % FER2013 test accuracy. Inputs scaled to [-1, 1] as in its training script.

Layout, as in the authors' code: two 3x3 convolutions (8 filters, valid padding) -> BatchNorm -> ReLU,
then four residual modules of 16, 32, 64 and 128 filters, each two 3x3 depthwise-separable convolutions
with BatchNorm (ReLU between them), 3x3/2 max-pooling, added to a 1x1/2 convolution of the module's input.
The authors' classifier (a 3x3 convolution to one map per class, global average pooling, softmax) is the
``conv_gap`` head, so the backbone ends at the last module's 128-channel feature map (3x3 at 48 px).

``l2`` is the authors' kernel regularization (0.01), on the two stem convolutions only. Their code also
passes ``kernel_regularizer`` to every ``SeparableConv2D``, but Keras 2's separable convolution has no
kernel of that name: it forwarded the argument to its base class and regularized its depthwise and
pointwise kernels with ``depthwise_regularizer``/``pointwise_regularizer`` (unset), so the published model
trained with no L2 on its separable convolutions. ``separable_l2`` (default 0, as it trained) puts it there.
Session 4's 48 px run regularized them with 0.01 too (0.579 test accuracy; 0.613 without, session 6;
benchmarks/RESULTS.md#evidence-arriaga-l2).
BatchNorm momentum is 0.9, as for bench's other from-scratch backbones (see baseline_cnn); the authors'
Keras 2 layers had its default 0.99, which does not matter here: a trained model's statistics re-estimated
with 0.99 over augmented training batches scored as before (0.614 vs 0.613 test accuracy), while ones
recomputed on un-augmented images gained 3.3 points (``model.batchnorm_stats``;
benchmarks/RESULTS.md#evidence-arriaga-batchnorm-stats).
"""

import keras
from keras import layers, regularizers

from bench.backbones._keras_apps import load_backbone_weights, resolve_weights
from bench.registry import BACKBONES


def _module(x, filters: int, index: int, separable_l2):
    name = f"module{index}"
    # The authors' 1x1 convolution with stride 2, written as "keep every second pixel, then a 1x1
    # convolution": the same outputs and the same kernel (old checkpoints load), but TensorFlow 2.21's
    # oneDNN gradient of a strided 1x1 convolution corrupts the heap for inputs with < 16 channels, even
    # sides and > 768 output pixels (module 1 at 64 px: 60x60x8), which killed the 64 px runs
    # (bench/train/known_faults.py, benchmarks/LOG.md#log-onednn-crashes).
    shortcut = layers.MaxPooling2D(1, strides=2, name=f"{name}_shortcut_subsample")(x)
    shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_shortcut")(shortcut)
    shortcut = layers.BatchNormalization(momentum=0.9, name=f"{name}_shortcut_bn")(shortcut)
    for j in (1, 2):
        x = layers.SeparableConv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            depthwise_regularizer=separable_l2,
            pointwise_regularizer=separable_l2,
            name=f"{name}_sepconv{j}",
        )(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_sepconv{j}_bn")(x)
        if j == 1:
            x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    return layers.Add(name=f"{name}_add")([x, shortcut])


@BACKBONES.register(min_size=32, normalization="tf", imagenet=False, weights_file=None)
def mini_xception(*, input_shape=(48, 48, 3), weights="none", filters=(16, 32, 64, 128), l2=0.01, separable_l2=0.0):
    path = resolve_weights("mini_xception", weights, has_imagenet=False, weights_file=None)
    reg = regularizers.L2(l2) if l2 else None
    separable_reg = regularizers.L2(separable_l2) if separable_l2 else None
    inputs = keras.Input(input_shape)
    x = inputs
    for i in (1, 2):
        x = layers.Conv2D(8, 3, use_bias=False, kernel_regularizer=reg, name=f"stem_conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"stem_bn{i}")(x)
        x = layers.Activation("relu", name=f"stem_relu{i}")(x)
    for i, width in enumerate(filters):
        x = _module(x, width, i + 1, separable_reg)
    model = keras.Model(inputs, x, name="backbone")
    return load_backbone_weights(model, "mini_xception", path)
