"""Model shapes known to crash TensorFlow's oneDNN kernels, refused before training starts.

TensorFlow 2.21 with oneDNN's custom operations on (bench's default, bench/runtime.py) corrupts the heap
when it computes the kernel gradient of a 1x1 convolution with a stride above 1 whose input has fewer
than 16 channels, sides that the stride divides, and more than 768 output pixels (height x width after
the stride): glibc aborts (``free(): invalid size``, ``malloc(): unaligned tcache chunk``) or the process
segfaults within the first two training steps, whatever the batch size. Measured on this project's AMD
EPYC CPU, one process per shape (benchmarks/investigations/onednn_strided_pointwise.py, LOG.md#log-onednn-crashes):
stride 2 at 56x56, 60x60, 62x50, 80x40, 100x100 crashes (784-2,500 output pixels) and at 54x54, 64x48,
66x46, 100x30 trains (729-768); odd sides (57, 61, 63, 101, 60x61) train; stride 3 crashes at 84x84 and
90x90 and trains at 81x81 and 60x60; strides (1, 2) and (2, 1) crash at 60x60; 16 or more input
channels, a 3x3 kernel, inference, and oneDNN off all run. mini_xception's first residual module met it at
64 px input (a 60x60x8 map); the backbone now writes that convolution another way. A user's plugin
backbone could still meet it, so bench checks before the first step and says what to do instead of
crashing mid-run. Not checked: subclassed models (no layer graph to read), unknown spatial sizes, and a
layer called more than once (Keras gives the input of its first call only).
"""

from __future__ import annotations

import keras

from bench.backbones._keras_apps import all_layers
from bench.errors import BenchError

MIN_SAFE_CHANNELS = 16
MAX_SAFE_OUTPUT_PIXELS = 768  # 64x48 at stride 2 trained, 62x50 (775) crashed


def strided_pointwise_faults(model: keras.Model) -> list[str]:
    """Describe every strided 1x1 ``Conv2D`` in ``model`` (nested models included) whose input shape is
    one oneDNN's gradient crashes on (see the module docstring); [] when none."""
    found = []
    for layer in all_layers(model):
        if not isinstance(layer, keras.layers.Conv2D) or tuple(layer.kernel_size) != (1, 1):
            continue
        strides = tuple(layer.strides)
        if max(strides) < 2:
            continue
        try:
            shape = tuple(layer.input.shape)
        except (AttributeError, ValueError):  # not called in a functional graph
            continue
        if layer.data_format == "channels_first":
            channels, height, width = shape[1:4]
        else:
            height, width, channels = shape[1:4]
        if None in (height, width, channels) or channels >= MIN_SAFE_CHANNELS:
            continue
        if height % strides[0] or width % strides[1]:
            continue  # the stride does not divide the sides: trained in every case measured
        if (height // strides[0]) * (width // strides[1]) > MAX_SAFE_OUTPUT_PIXELS:
            found.append(f"{layer.name} ({height}x{width}x{channels} input, strides {strides[0]}x{strides[1]})")
    return found


def refuse_onednn_faults(model: keras.Model) -> None:
    """Raise a one-line :class:`BenchError` naming the fix when ``model`` would crash TensorFlow's
    oneDNN gradient (see the module docstring); nothing under another backend or with oneDNN off."""
    from bench.backend import is_tensorflow
    from bench.runtime import ONEDNN_VARIABLE, onednn_enabled

    if not (is_tensorflow() and onednn_enabled()):
        return
    faults = strided_pointwise_faults(model)
    if faults:
        raise BenchError(
            f"{', '.join(faults)}: TensorFlow's oneDNN gradient of a strided 1x1 convolution with under "
            f"{MIN_SAFE_CHANNELS} input channels and over {MAX_SAFE_OUTPUT_PIXELS} output pixels crashes the "
            f"process; run with {ONEDNN_VARIABLE}=0 (slower), use another image size, or write the layer as "
            "MaxPooling2D(1, strides=...) followed by a 1x1 convolution (same outputs)"
        )
