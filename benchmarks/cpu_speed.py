"""Training speed on CPU: every backbone under each setting bench can choose.

For each backbone + hybrid head, each oneDNN setting (``TF_ENABLE_ONEDNN_OPTS`` 0 / 1, read by TensorFlow
at import, hence one child process per setting) and each precision (float32, mixed_bfloat16):
steady-state training images/s at the cpu recipe's image size, batch 32 (median of timed
``train_on_batch`` steps after warm-up). Prints one table, then the same figures as one JSON line.

    python benchmarks/cpu_speed.py [--backbone NAME ...] [--steps 8] [--warmup 3]

``--ratios`` runs ``benchmarks/speed_ratios.py`` with the other arguments (the speed ratios of issue 13:
steps_per_execution, threads, hybrid vs mlp head, BatchNorm; see its docstring), where that mode moved:

    python benchmarks/cpu_speed.py --ratios [--quick] [--cases REGEX] [--json FILE] ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import json, sys
import keras
from bench.recipe_load import load_recipe
from bench.models import build_model
from bench.profile import throughput
backbone, precision, warmup, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
recipe = load_recipe("cpu")
model, spec = build_model(backbone=backbone, head="hybrid", image_size=recipe.data.image_size,
                          head_options=recipe.model.head_options["hybrid"], precision=precision)
train, infer = throughput(model, warmup=warmup, steps=steps)
print(json.dumps({"train": train, "infer": infer, "size": spec.image_size}))
"""


def measure(backbone: str, onednn: str, precision: str, warmup: int, steps: int) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, backbone, precision, str(warmup), str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def table_mode(args) -> None:
    backbones = args.backbone or ["baseline_cnn", "mobilenet_v3_small", "resnet50", "efficientnet_b3", "xception"]
    settings = [("0", "float32"), ("1", "float32"), ("0", "mixed_bfloat16"), ("1", "mixed_bfloat16")]
    header = ["backbone + hybrid", "px"] + [f"oneDNN {o} {p}" for o, p in settings]
    print(" | ".join(header), flush=True)
    figures = []
    for backbone in backbones:
        cells, size = [], ""
        for onednn, precision in settings:
            result = measure(backbone, onednn, precision, args.warmup, args.steps)
            cells.append(f"{result['train']:.1f}")
            size = str(result["size"])
            figures.append({"backbone": backbone, "onednn": onednn, "precision": precision, **result})
        print(" | ".join([backbone, size, *cells]), flush=True)
    print(json.dumps({"train_images_per_second": figures}), flush=True)  # the table as one JSON line


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--ratios" in argv:  # the mode that moved to speed_ratios.py, still reachable as before
        from speed_ratios import main as speed_ratios  # this script's folder is on sys.path when run

        return speed_ratios([a for a in argv if a != "--ratios"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", action="append", default=None, help="backbones to measure")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up steps")
    parser.add_argument("--steps", type=int, default=8, help="timed steps")
    parser.add_argument("--ratios", action="store_true", help="run benchmarks/speed_ratios.py with the rest")
    table_mode(parser.parse_args(argv))


if __name__ == "__main__":
    main()
