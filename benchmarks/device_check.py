"""The GPU check of experiments/gpu.toml: each backbone trains a fixed number of epochs, one call per
~8 minutes of device time.

    KERAS_BACKEND=jax python -u benchmarks/device_check.py [--data .carry/fer2013.u8.xz] [--epochs 30]
        [--backbone NAME ...]

First the augmentation's speed on the device (eager and jit-compiled layers, a few seconds), then a
probe (baseline_cnn, two epochs) that shows whether an epoch fits at all (compile time, input feeding)
before the rest is spent; then each ``--backbone`` (default: all) for ``--epochs`` epochs, with no time
budget. Fixed epochs, not a share of minutes: on the H200 (session 12, benchmarks/RESULTS.md#gpu-check) compiling a
backbone's steps took 20-100+ s against 1-2 s for an epoch of training, so a time share went to the
compiler and a budgeted run's plan, made from its first epoch, was far too short. Every epoch is printed
as it ends, flushed, and ``$OUT/device_check.json`` is rewritten after the probe and after each backbone,
so a run cut off by the device's time limit still returns what it finished. Each backbone's figures
include ``compile_seconds``: its first epoch's wall time less a steady epoch's.

Compiled programs are kept in ``JAX_COMPILATION_CACHE_DIR`` (default ``/tmp/bench-jax-cache``), so a
second call on the same warm machine, or the full run after the probe, does not compile baseline_cnn again.

On the lent GPU machine (JAX with CUDA, no TensorFlow, no package registry), after
``python benchmarks/fer_carry.py --wheels`` here and with ``.carry`` carried:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/wheels/*.whl
    PYTHONPATH=/tmp/site KERAS_BACKEND=jax timeout 520 python3 -u benchmarks/device_check.py --backbone ...

It needs only NumPy, Keras and the backend: no MLflow, scikit-learn, pandas or OpenCV.

Data: the packed FER2013 Training + PrivateTest (benchmarks/fer_carry.py); validation is a seeded,
stratified 10 % of Training, test is PrivateTest. ``--synthetic N`` uses made-up faces instead (CPU
test of the script itself; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# Runs from a checkout where bench is not installed (a GPU machine without a package registry).
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

BACKBONES = ("baseline_cnn", "mini_xception", "mobilenet_v3_small", "resnet50", "efficientnet_b3", "xception")


def say(text: str) -> None:
    print(text, flush=True)


def load(data: Path | None, synthetic: int):
    """A FerData: the packed file's train rows split 90/10 into train/val, its test rows as test."""
    from bench.data.dataset import FerData, stratified_holdout

    if synthetic:
        from bench.data.synthetic import synthesize

        images, labels, _ = synthesize(synthetic, seed=1)
        splits = np.where(np.arange(synthetic) % 10 == 0, "test", "train").astype("<U5")
        source = f"synthetic:{synthetic}"
    else:
        from fer_carry import unpack

        images, labels, splits = unpack(data)
        splits, source = splits.astype("<U5"), str(data)
    train = np.flatnonzero(splits == "train")
    splits[train[stratified_holdout(labels[train], 0.1, seed=0)]] = "val"
    return FerData(images, labels, splits, source=source, protocol="Training 90/10 train/val; PrivateTest test")


def compile_seconds(epoch_walls: list[float]) -> float | None:
    """The first epoch's wall time less a steady epoch's (the median of the rest): what tracing and
    compiling the steps cost. None with fewer than two epochs."""
    if len(epoch_walls) < 2:
        return None
    return round(epoch_walls[0] - float(np.median(epoch_walls[1:])), 1)


def train_one(backbone: str, data, overrides: list[str]) -> dict:
    """Train ``backbone`` under the gpu recipe with ``overrides``; its timings and test figures."""
    import keras

    from bench.data.batches import predict_all
    from bench.metrics import macro_f1
    from bench.recipe_load import load_recipe
    from bench.reports import format_progress
    from bench.run_record import VAL_MACRO_F1
    from bench.train import Fit

    recipe = load_recipe("gpu", overrides, {"model.backbone": backbone})
    tic = time.perf_counter()
    fit = Fit.build(recipe, data)
    built = time.perf_counter() - tic
    walls, last = [], [time.perf_counter()]

    def progress(status):
        if status["epoch_end"]:
            now = time.perf_counter()
            walls.append(now - last[0])
            last[0] = now
            say(f"  {backbone} | {format_progress(status)} | epoch {walls[-1]:.1f} s")

    result = fit.train(progress=progress)
    y = fit.splits.y_test
    tic = time.perf_counter()
    probs = predict_all(fit.model, fit.splits.x_test, batch_size=max(recipe.data.batch_size, 256))
    figures = {
        "backbone": backbone,
        "build_seconds": round(built, 1),
        "train_seconds": round(result.train_seconds, 1),
        "compile_seconds": compile_seconds(walls),
        "epoch_seconds": [round(w, 2) for w in walls],
        "test_seconds": round(time.perf_counter() - tic, 1),
        "epochs": int(sum(result.actual_epochs)),
        "passes": round(result.train_passes, 2),
        "images_per_second": round(result.images_per_second, 1),
        "input_wait_fraction": round(result.input_wait_fraction, 3),
        "budget_hit": result.budget_hit,
        "test_accuracy": float(np.mean(probs.argmax(1) == y)) if len(y) else None,
        "test_macro_f1": macro_f1(y, probs.argmax(1), probs.shape[-1]) if len(y) else None,
        "val_macro_f1_per_epoch": [round(v, 4) for v in result.history.get(VAL_MACRO_F1, [])],
    }
    keras.backend.clear_session()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(".carry/fer2013.u8.xz"))
    parser.add_argument("--synthetic", type=int, default=0, help="N made-up faces instead of --data.")
    parser.add_argument("--epochs", type=int, default=30, help="Epochs per backbone (gpu.toml's: 30).")
    parser.add_argument("--probe-epochs", type=int, default=2, help="baseline_cnn's epochs first; 0: no probe.")
    parser.add_argument("--backbone", action="append", help=f"Repeatable (default: {', '.join(BACKBONES)}).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Recipe override KEY=VALUE.")
    args = parser.parse_args()
    out = Path(os.environ.get("OUT", "outputs/device_check"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/bench-jax-cache")  # read when JAX is imported

    from bench.runtime import environment_tags

    report = {"environment": environment_tags("mixed_bfloat16"), "probe": None, "backbones": []}
    say(f"environment: {json.dumps(report['environment'])}")
    tic = time.perf_counter()
    data = load(None if args.synthetic else args.data, args.synthetic)
    say(f"data: {data.split_sizes()} loaded in {time.perf_counter() - tic:.1f} s")

    def save():
        (out / "device_check.json").write_text(json.dumps(report, indent=2))

    from loader_speed import measure

    report["augmented_images_per_second"] = measure(n_batches=20, batch_size=256)
    say(f"augmentation: {json.dumps(report['augmented_images_per_second'])}")
    save()
    fixed = ["run.budget_minutes=0"]
    if args.probe_epochs:
        say(f"probe: baseline_cnn, {args.probe_epochs} epochs")
        probe = [*fixed, f"phases.0.epochs={args.probe_epochs}", *args.overrides]
        report["probe"] = train_one("baseline_cnn", data, probe)
        say(f"probe: {json.dumps(report['probe'])}")
        save()
    for name in args.backbone or BACKBONES:
        say(f"== {name}: {args.epochs} epochs")
        try:
            overrides = [*fixed, f"phases.0.epochs={args.epochs}", *args.overrides]
            report["backbones"].append(train_one(name, data, overrides))
        except Exception as exc:  # one failing backbone must not cost the others' results
            report["backbones"].append({"backbone": name, "error": f"{type(exc).__name__}: {exc}"})
        say(f"{name}: {json.dumps(report['backbones'][-1])}")
        save()
    say(f"done in {time.perf_counter() - tic:.0f} s; wrote {out / 'device_check.json'}")


if __name__ == "__main__":
    main()
