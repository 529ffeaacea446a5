"""Reproduces the TensorFlow + oneDNN crash that a partial training batch causes, and shows bench's
training input avoids it.

With ``TF_ENABLE_ONEDNN_OPTS=1`` (bench's default here), TensorFlow 2.21 on this AMD EPYC dies on the
first training step whose batch is smaller than the earlier ones (the last, partial batch of a pass)
when the model has depthwise-separable convolutions (mini_xception): SIGSEGV in a ``tf_Compute``
thread, or glibc's ``free(): invalid size``. Each case runs in its own process (a crash ends it):

- ``fit`` on arrays with a partial last batch, oneDNN on          -> crashes
- the same without a partial batch (n a multiple of the batch)     -> trains
- the same partial batch with oneDNN off                           -> trains
- bench's training stream (``make_dataset(shuffle=True)``), oneDNN on -> trains (it drops the remainder)

    python benchmarks/investigations/onednn_partial_batch.py [--backbone mini_xception] [--batches 8] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import sys
import bench
import keras, numpy as np
from bench.data.pipeline import make_dataset
from bench.models import build_model
backbone, n, bs, epochs, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
keras.utils.set_random_seed(0)
model, _ = build_model(backbone=backbone, head="conv_gap" if backbone == "mini_xception" else "mlp")
model.compile("adam", "categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (n, 48, 48, 1)).astype("uint8")
y = rng.integers(0, 7, n)
if mode == "bench":
    model.fit(make_dataset(x, y, batch_size=bs, shuffle=True), epochs=epochs, verbose=0)
else:
    model.fit(x.astype("float32"), keras.utils.to_categorical(y, 7), batch_size=bs, epochs=epochs, verbose=0)
print("trained")
"""


def case(backbone: str, n: int, bs: int, epochs: int, onednn: str, mode: str) -> str:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, backbone, str(n), str(bs), str(epochs), mode],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode == 0 and "trained" in done.stdout:
        return "trains"
    tail = [line for line in done.stderr.splitlines() if line.strip()][-1:] or [""]
    return f"CRASH (exit {done.returncode}: {tail[0][:60]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mini_xception")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=8, help="full batches before the partial one")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    full, partial = args.batch * args.batches, args.batch * args.batches + args.batch // 2 + 3
    cases = [
        ("arrays, partial last batch, oneDNN on", partial, "1", "arrays"),
        ("arrays, full batches only, oneDNN on", full, "1", "arrays"),
        ("arrays, partial last batch, oneDNN off", partial, "0", "arrays"),
        ("bench make_dataset(shuffle=True), oneDNN on", partial, "1", "bench"),
    ]
    print(f"{args.backbone}, batch {args.batch}, {args.epochs} epochs")
    for label, n, onednn, mode in cases:
        print(f"{label} (n={n}): {case(args.backbone, n, args.batch, args.epochs, onednn, mode)}", flush=True)


if __name__ == "__main__":
    main()
