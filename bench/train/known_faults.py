"""Model shapes known to crash TensorFlow's oneDNN kernels, refused before training starts.

TensorFlow 2.21 with oneDNN's custom operations on (bench's default, bench/runtime.py) corrupts the heap
when it computes the kernel gradient of a 1x1 convolution with stride 2 whose input has fewer than 16
channels and an even side of 56 or more: glibc aborts (``free(): invalid size``, ``malloc(): unaligned
tcache chunk``) or the process segfaults within the first two training steps, whatever the batch size.
Measured on this project's AMD EPYC CPU, one process per shape (benchmarks/onednn_strided_pointwise.py,
table in benchmarks/RESULTS.md): 56, 60, 62, 64, 68 and 100 px crash; 44-54 px and every odd side
train; 16 or more input channels, a 3x3 kernel, inference, and oneDNN off all run. mini_xception's first
residual module met it at 64 px input (a 60x60x8 map); the backbone now writes that convolution another
way. A user's plugin backbone could still meet it, so bench checks before the first step and says what to
do instead of crashing mid-run.
"""

from __future__ import annotations

import keras

from bench.errors import BenchError

MIN_SAFE_CHANNELS = 16
MIN_FAULTING_SIDE = 56


def strided_pointwise_faults(model: keras.Model) -> list[str]:
    """Describe every 1x1 strided ``Conv2D`` in ``model`` (nested models included) whose input shape is
    one oneDNN's gradient crashes on; [] when none."""
    found = []
    for layer in _all_layers(model):
        if type(layer) is not keras.layers.Conv2D or tuple(layer.kernel_size) != (1, 1):
            continue
        if max(layer.strides) < 2:
            continue
        try:
            shape = tuple(layer.input.shape)
        except (AttributeError, ValueError):  # a layer called more than once has no single input
            continue
        height, width, channels = shape[1:4]
        sides = [side for side in (height, width) if side is not None]
        if (
            channels is not None
            and channels < MIN_SAFE_CHANNELS
            and any(side >= MIN_FAULTING_SIDE and side % 2 == 0 for side in sides)
        ):
            found.append(f"{layer.name} ({height}x{width}x{channels} input)")
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
            f"{', '.join(faults)}: TensorFlow's oneDNN gradient of a 1x1 stride-2 convolution with under "
            f"{MIN_SAFE_CHANNELS} input channels and an even side >= {MIN_FAULTING_SIDE} crashes the process; "
            f"run with {ONEDNN_VARIABLE}=0 (slower), use an odd or smaller image size, or write the layer as "
            "MaxPooling2D(1, strides=2) followed by a 1x1 convolution (same outputs)"
        )


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
