"""Where one training step's time goes: TensorFlow's profiler, summed by op category, per backbone + head.

For each backbone + head pair: build the model as bench does (float32, the cpu recipe's image size and
head options), compile it with the cpu recipe's optimizer (AdamW), run a few warm-up steps through
``model.fit`` (the path bench trains on), then trace a few more steps with
``tf.profiler.experimental`` and read the trace file (XSpace protocol buffer, the profiler's own output
format) back. Op time is summed by category (convolutions, BatchNorm, matmuls, softmax, reductions,
element-wise, the optimizer's update, ...) and shown as a share of the summed op time, next to the
step's wall time: on a 2-core CPU the op times of the two inter-op threads overlap, so the shares are
the figure to read, and "host gap" (the share of the timed ``fit`` call's wall time during which no op
ran) is the dispatch, input and Python overhead between ops.

    python benchmarks/step_profile.py [--model baseline_cnn+hybrid ...] [--batch 64] [--steps 6]
        [--set model.batchnorm=keras ...] [--top 8] [--json FILE]

The model is the cpu recipe's, built by ``bench.train.build_for_recipe`` as ``bench run`` builds it (its
precision, backbone and head options, BatchNorm kernel and thread counts); ``--set`` takes bench's recipe
overrides, so a candidate such as ``model.head_options.hybrid.projection_dim=128`` is profiled as bench
would train it. The cpu recipe's BatchNorm is ``auto`` (TensorFlow's fused kernel) since session 13;
``--set model.batchnorm=keras`` profiles Keras' layer, as the figures before it did.

Measure on an idle machine (or read shares only): other jobs stretch every op alike, but not the gaps.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

DEFAULT_MODELS = (
    "baseline_cnn+linear",
    "baseline_cnn+mlp",
    "baseline_cnn+hybrid",
    "mini_xception+conv_gap",
    "mobilenet_v3_small+hybrid",
    "resnet50+hybrid",
)

# Op type -> category; first matching rule wins (checked in order, on the op type's lower-cased name).
CATEGORIES = tuple(
    (category, tuple(needles.split()))
    for category, needles in (
        ("depthwise conv", "depthwiseconv"),
        ("convolution", "conv2d conv3d _fusedconv2d mklconv"),
        ("batchnorm", "batchnorm fusedbatchnorm"),
        ("matmul / einsum", "matmul einsum batchmatmul"),
        ("softmax / log-softmax", "softmax"),
        ("optimizer update", "resourceapply assignsubvariable assignaddvariable assignvariable"),
        ("reduction", "sum mean max min prod argmax"),
        ("pooling", "pool"),
        ("activation", "relu sigmoid tanh elu gelu swish selu"),
        (
            "layout / copy",
            "transpose reshape concat slice pack unpack pad tile cast identity squeeze expanddims "
            "gather broadcast split",
        ),
        (
            "element-wise",
            "add sub mul div sqrt rsqrt square pow exp log neg maximum minimum select equal greater "
            "less reciprocal biasadd",
        ),
    )
)


def categorize(op_type: str) -> str:
    """The category of a TensorFlow op type (e.g. ``_FusedConv2D`` -> convolution)."""
    name = op_type.lower()
    for category, needles in CATEGORIES:
        if any(n in name for n in needles):
            return category
    return "other"


OP_EVENT = re.compile(r"^[^:\s]+:(?P<type>[A-Za-z_][A-Za-z0-9_]*)$")  # "scope/name:Type", one executed op
CONTAINERS = ("StatefulPartitionedCall", "PartitionedCall")  # a function call spans the ops inside it


def read_op_events(logdir: str) -> tuple[dict[str, float], dict[str, float], float]:
    """(seconds per op type, seconds per op scope, seconds covered by at least one op) from a trace.

    Reads the ``*.xplane.pb`` file that ``tf.profiler.experimental.stop()`` writes: on the host plane
    each ``tf_Compute`` line is an inter-op thread and each of its events named "scope/name:Type" one
    executed op (its intra-op work on the Eigen threads included). Executor and thread-pool bookkeeping
    events and function calls, which span other ops, are skipped."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # the trace's schema, shipped with TensorFlow

    files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not files:
        raise SystemExit(f"error: the profiler wrote no trace under {logdir}")
    space = xplane_pb2.XSpace()
    with open(files[0], "rb") as f:
        space.ParseFromString(f.read())
    per_type: dict[str, float] = collections.defaultdict(float)
    per_scope: dict[str, float] = collections.defaultdict(float)
    intervals = []
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                match = OP_EVENT.match(name)
                if not match or match["type"] in CONTAINERS or match["type"].startswith("__inference"):
                    continue
                seconds = event.duration_ps * 1e-12
                per_type[match["type"]] += seconds
                per_scope[name.rsplit(":", 1)[0]] += seconds
                start = line.timestamp_ns * 1e-9 + event.offset_ps * 1e-12
                intervals.append((start, start + seconds))
    covered, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            covered += b - max(a, end)
            end = b
    return dict(per_type), dict(per_scope), covered


def layer_kinds(model) -> dict[str, str]:
    """Layer name -> layer class name, for the model and the models nested in it (backbone, head)."""
    kinds, stack = {}, [model]
    while stack:
        layer = stack.pop()
        kinds[layer.name] = type(layer).__name__
        stack.extend(getattr(layer, "layers", []))
    return kinds


def sublayer_names(layer) -> set[str]:
    """The names of the layers a custom layer holds as attributes (``SpatialTransformerBlock.attention``
    is "mhsa"): Keras lists a model's layers, not those of a layer's own sub-layers."""
    import keras

    return {value.name for value in vars(layer).values() if isinstance(value, keras.layers.Layer)}


def attribute(scope: str, kinds: dict[str, str]) -> str:
    """The class of the innermost layer named in an op's scope ("optimizer" for the update, "other")."""
    parts = scope.split("/")
    for part in reversed(parts):
        for candidate in (part, re.sub(r"_\d+$", "", part)):
            if candidate in kinds and kinds[candidate] not in ("Functional", "Sequential"):
                return kinds[candidate]
    if any(p.startswith(("adam", "sgd", "optimizer")) for p in parts):
        return "optimizer"
    return "other"


def profile_model(
    backbone: str, head: str, batch: int, warmup: int, steps: int, overrides: tuple[str, ...] = ()
) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from bench.recipe_load import load_recipe
    from bench.train import build_for_recipe

    recipe = load_recipe("cpu", overrides, {"model.backbone": backbone, "model.head": head})
    model, spec, _ = build_for_recipe(recipe)
    model.compile(keras.optimizers.AdamW(1e-3, weight_decay=1e-3), "categorical_crossentropy", jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch * (warmup + steps), 48, 48, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 7, len(x)), 7)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
    model.fit(ds.take(warmup), epochs=1, verbose=0)
    timed = ds.skip(warmup).take(steps)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        tic = time.perf_counter()
        model.fit(timed, epochs=1, verbose=0)
        wall = time.perf_counter() - tic
        tf.profiler.experimental.stop()
        per_type, per_scope, covered = read_op_events(logdir)
    total = sum(per_type.values()) or 1.0
    per_category: dict[str, float] = collections.defaultdict(float)
    for op_type, seconds in per_type.items():
        per_category[categorize(op_type)] += seconds
    kinds = layer_kinds(model)
    per_layer: dict[str, float] = collections.defaultdict(float)
    for scope, seconds in per_scope.items():
        per_layer[attribute(scope, kinds)] += seconds
    blocks = [layer for layer in model.head.layers if layer.name in BLOCKS] if hasattr(model, "head") else []
    names = set().union(*(sublayer_names(block) for block in blocks))
    per_part: dict[str, float] = collections.defaultdict(float)
    for scope, seconds in per_scope.items():
        per_part[head_part(scope, names)] += seconds
    return {
        "model": f"{backbone}+{head}" + "".join(f" {o}" for o in overrides),
        "size": spec.image_size,
        "step_ms": 1e3 * wall / steps,
        "op_ms_per_step": 1e3 * total / steps,
        "host_gap": max(0.0, 1 - covered / wall) if wall else 0.0,
        "categories": {k: v / total for k, v in sorted(per_category.items(), key=lambda kv: -kv[1])},
        "layers": {k: v / total for k, v in sorted(per_layer.items(), key=lambda kv: -kv[1])},
        "head_parts": {k: v / total for k, v in sorted(per_part.items(), key=lambda kv: -kv[1]) if k},
        "top_ops": {k: v / total for k, v in sorted(per_type.items(), key=lambda kv: -kv[1])},
    }


BLOCKS = ("transformer", "channel_spatial_attention")  # the hybrid head's custom layers, split by sub-layer


def head_part(scope: str, sublayers: set[str]) -> str:
    """The part of the hybrid head an op's scope names: its layer ("fusion"), or inside the custom blocks
    of :data:`BLOCKS` their sub-layer ("transformer/mhsa"; the block's own ops, its residual adds and
    reshapes, as "transformer/(own ops)"); "" outside the head. :func:`attribute`'s layer classes stop at a
    custom layer (the transformer block is one class); these names go one level into it. ``sublayers``: the
    blocks' sub-layer names (:func:`sublayer_names`)."""
    parts = [re.sub(r"_\d+$", "", p) for p in scope.split("/")]
    if "head" not in parts:
        return ""
    inner = parts[parts.index("head") + 1 :]
    if not inner:
        return ""
    if inner[0] in BLOCKS:
        return f"{inner[0]}/{inner[1]}" if len(inner) > 2 and inner[1] in sublayers else f"{inner[0]}/(own ops)"
    return inner[0]


def render(result: dict, top: int) -> str:
    lines = [
        f"== {result['model']} @{result['size']}px: step {result['step_ms']:.1f} ms wall, "
        f"{result['op_ms_per_step']:.1f} ms of op time, host gap {result['host_gap']:.0%}",
        "   by op: " + ", ".join(f"{k} {v:.0%}" for k, v in result["categories"].items() if v >= 0.01),
        "   by layer: " + ", ".join(f"{k} {v:.0%}" for k, v in result["layers"].items() if v >= 0.01),
        "   head parts: " + ", ".join(f"{k} {v:.1%}" for k, v in list(result["head_parts"].items())[:top]),
        "   top ops: " + ", ".join(f"{k} {v:.0%}" for k, v in list(result["top_ops"].items())[:top]),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, metavar="BACKBONE+HEAD")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a cpu-recipe override (model.batchnorm=keras)"
    )
    parser.add_argument("--json", default=None, help="also write every result to this file")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = []
    for pair in args.model or DEFAULT_MODELS:
        backbone, _, head = pair.partition("+")
        result = profile_model(backbone, head or "hybrid", args.batch, args.warmup, args.steps, tuple(args.set))
        print(render(result, args.top), flush=True)
        results.append(result)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
