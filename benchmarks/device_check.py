"""The GPU check of experiments/gpu.toml, sized for ~8 minutes of device time.

    KERAS_BACKEND=jax python -u benchmarks/device_check.py [--data .carry/fer2013.u8.xz] [--minutes 5]

First the augmentation's speed on the device (eager and jit-compiled layers, a few seconds), then a
60-second probe (baseline_cnn, two epochs) that shows whether an epoch fits at all (compile
time, input feeding) before the budget is spent; then every backbone in turn with an equal share of
``--minutes`` (the trainer times the first epoch and shrinks the planned epochs to fit; under jit it keeps
that plan, as a re-plan's rebuilt step would cost more than it wins). Every epoch is
printed as it ends, flushed; ``$OUT/device_check.json`` is rewritten after the probe and after each
backbone, so a run cut off by the device's time limit still returns what it finished.

On the lent GPU machine (JAX with CUDA, no TensorFlow, no package registry), after
``python benchmarks/fer_carry.py --wheels`` here and with ``.carry`` carried:

    pip install --no-deps .carry/wheels/*.whl  # only where keras/namex/optree are missing
    KERAS_BACKEND=jax timeout 540 python -u benchmarks/device_check.py

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


def train_one(backbone: str, data, overrides: list[str]) -> dict:
    """Train ``backbone`` under the gpu recipe with ``overrides``; its timings and test figures."""
    import keras

    from bench.callbacks import macro_f1
    from bench.config import load_recipe
    from bench.data.batches import make_stream
    from bench.reports import format_progress
    from bench.train import Fit

    recipe = load_recipe("gpu", overrides, {"model.backbone": backbone})
    tic = time.perf_counter()
    fit = Fit.build(recipe, data)
    built = time.perf_counter() - tic

    def progress(status):
        if status["epoch_end"]:
            say(f"  {backbone} | {format_progress(status)}")

    result = fit.train(progress=progress)
    y = fit.splits.y_test
    probs = fit.model.predict(make_stream(fit.splits.x_test, y, batch_size=512, inputs_only=True), verbose=0)
    figures = {
        "backbone": backbone,
        "build_seconds": round(built, 1),
        "train_seconds": round(result.train_seconds, 1),
        "epochs": int(sum(result.actual_epochs)),
        "passes": round(result.train_passes, 2),
        "images_per_second": round(result.images_per_second, 1),
        "input_wait_fraction": round(result.input_wait_fraction, 3),
        "budget_hit": result.budget_hit,
        "test_accuracy": float(np.mean(probs.argmax(1) == y)) if len(y) else None,
        "test_macro_f1": macro_f1(y, probs.argmax(1)) if len(y) else None,
        "val_macro_f1_per_epoch": [round(v, 4) for v in result.history.get("val_macro_f1", [])],
    }
    keras.backend.clear_session()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(".carry/fer2013.u8.xz"))
    parser.add_argument("--synthetic", type=int, default=0, help="N made-up faces instead of --data.")
    parser.add_argument("--minutes", type=float, default=5.0, help="Training budget, all backbones together.")
    parser.add_argument("--probe-seconds", type=float, default=60.0)
    parser.add_argument("--backbone", action="append", help=f"Repeatable (default: {', '.join(BACKBONES)}).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Recipe override KEY=VALUE.")
    args = parser.parse_args()
    out = Path(os.environ.get("OUT", "outputs/device_check"))
    out.mkdir(parents=True, exist_ok=True)

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
    say(f"probe: baseline_cnn, 2 epochs, {args.probe_seconds:.0f} s budget")
    probe = ["phases.0.epochs=2", f"run.budget_minutes={args.probe_seconds / 60}", *args.overrides]
    report["probe"] = train_one("baseline_cnn", data, probe)
    say(f"probe: {json.dumps(report['probe'])}")
    save()
    backbones = args.backbone or list(BACKBONES)
    share = args.minutes / len(backbones)
    for name in backbones:
        say(f"== {name}: {share:.1f} min budget")
        try:
            report["backbones"].append(train_one(name, data, [f"run.budget_minutes={share}", *args.overrides]))
        except Exception as exc:  # one failing backbone must not cost the others' results
            report["backbones"].append({"backbone": name, "error": f"{type(exc).__name__}: {exc}"})
        say(f"{name}: {json.dumps(report['backbones'][-1])}")
        save()
    say(f"done in {time.perf_counter() - tic:.0f} s; wrote {out / 'device_check.json'}")


if __name__ == "__main__":
    main()
