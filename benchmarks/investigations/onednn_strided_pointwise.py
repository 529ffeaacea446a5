"""Reproduces the TensorFlow + oneDNN crash of a 1x1 stride-2 convolution's gradient, and shows the
shapes bench refuses (bench/train/known_faults.py) and the rewrite mini_xception uses.

With ``TF_ENABLE_ONEDNN_OPTS=1`` (bench's default here), TensorFlow 2.21 on this AMD EPYC corrupts the
heap within two training steps of a model whose strided ``Conv2D(16, 1)`` sees an input with < 16
channels, sides the stride divides, and more than 768 output pixels (glibc ``free(): invalid size`` /
``double free``, or SIGSEGV). Each case
is a one-convolution model (input -> conv -> global average pooling -> softmax) trained for 2 epochs of
4 batches on random data, in its own process (a crash ends it):

    python benchmarks/investigations/onednn_strided_pointwise.py [--onednn 1] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import sys
import keras, numpy as np
from keras import layers
height, width, channels, kernel, row_stride, column_stride, batch = map(int, sys.argv[1:8])
layout = sys.argv[8]
strides = (row_stride, column_stride)
keras.utils.set_random_seed(0)
inputs = keras.Input((height, width, channels))
x = inputs
if layout == "subsample":  # mini_xception's rewrite: the same outputs as the strided 1x1 convolution
    x = layers.MaxPooling2D(1, strides=strides)(x)
    strides = 1
x = layers.Conv2D(16, kernel, strides=strides, padding="same", use_bias=False)(x)
model = keras.Model(inputs, layers.Dense(7, activation="softmax")(layers.GlobalAveragePooling2D()(x)))
model.compile("adam", "sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
images = rng.normal(size=(4 * batch, height, width, channels)).astype("float32")
model.fit(images, rng.integers(0, 7, 4 * batch), batch_size=batch, epochs=2, verbose=0)
print("trained")
"""

# (height, width, input channels, kernel, stride, layout); stride is (rows, columns) or one number
CASES = [
    (44, 44, 8, 1, 2, "conv"),  # mini_xception's module 1 at 48 px
    (52, 52, 8, 1, 2, "conv"),  # ... at 56 px
    (54, 54, 8, 1, 2, "conv"),
    (56, 56, 8, 1, 2, "conv"),
    (60, 60, 8, 1, 2, "conv"),  # ... at 64 px
    (68, 68, 8, 1, 2, "conv"),  # ... at 72 px
    (100, 100, 8, 1, 2, "conv"),
    (61, 61, 8, 1, 2, "conv"),
    (60, 61, 8, 1, 2, "conv"),
    (64, 48, 8, 1, 2, "conv"),  # 768 output pixels
    (62, 50, 8, 1, 2, "conv"),  # 775
    (100, 30, 8, 1, 2, "conv"),  # 750
    (80, 40, 8, 1, 2, "conv"),  # 800
    (60, 60, 8, 1, (1, 2), "conv"),
    (81, 81, 8, 1, 3, "conv"),  # 729
    (84, 84, 8, 1, 3, "conv"),  # 784
    (62, 62, 1, 1, 2, "conv"),
    (60, 60, 15, 1, 2, "conv"),
    (60, 60, 16, 1, 2, "conv"),
    (60, 60, 8, 3, 2, "conv"),
    (60, 60, 8, 1, 1, "conv"),
    (60, 60, 8, 1, 2, "subsample"),
    (100, 100, 8, 1, 2, "subsample"),
]


def case(height, width, channels, kernel, strides, layout, batch, onednn) -> str:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    rows, columns = strides if isinstance(strides, tuple) else (strides, strides)
    args = [str(v) for v in (height, width, channels, kernel, rows, columns, batch, layout)]
    done = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True)
    if done.returncode == 0 and "trained" in done.stdout:
        return "trains"
    lines = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith(("I0000", "W0000", "WARNING: All log"))
    ]
    return f"CRASH (exit {done.returncode}{': ' + lines[-1][:50] if lines else ''})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onednn", default="1", help="TF_ENABLE_ONEDNN_OPTS for every case")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    print(f"TF_ENABLE_ONEDNN_OPTS={args.onednn}, batch {args.batch}")
    print("| input | layer | result |\n|---|---|---|")
    for height, width, channels, kernel, strides, layout in CASES:
        layer = f"{kernel}x{kernel} conv, stride {strides}"
        if layout == "subsample":
            layer = f"MaxPooling2D(1, strides={strides}) + 1x1 conv"
        result = case(height, width, channels, kernel, strides, layout, args.batch, args.onednn)
        print(f"| {height}x{width}x{channels} | {layer} | {result} |", flush=True)


if __name__ == "__main__":
    main()
