"""Parity: the same model, data, optimizer and seed trained by bench's Trainer and by a bare ``model.fit``.

Both sides build baseline_cnn + mlp (or ``--backbone``/``--head``) from the same seed, so they start from
identical weights, and train it for the same number of passes over the training split with AdamW
(1e-3, weight decay 1e-3) and a cosine decay to 1 % over the passes, batch 64, no augmentation and no
class weights (pinned with overrides of the recipe's
settings; the model, including the head's dropout, is the recipe's). bench goes
through :class:`bench.train.Trainer` (tf.data input, per-epoch validation, best-epoch restore); the bare
side is ``model.fit`` on NumPy arrays with a Keras shuffle. Then both predict the test split.

Targets (issue 12): test macro-F1 within +-0.02 of the bare loop, steady-state training images/s at least
0.95x. Speed is each side's mean step time after warm-up (input waits included), so validation
passes and tracing do not count against either side; wall time per pass is printed too.

    python benchmarks/parity.py --data ../shared/data/fer2013/fer2013.csv.gz --passes 3
    python benchmarks/parity.py --data synthetic:3000 --passes 2        # seconds, for a quick look

The bare side feeds ``fit`` arrays with a partial last batch: keep to backbones without depthwise
convolutions (the default baseline_cnn), which TensorFlow + oneDNN crash on (see
investigations/onednn_partial_batch.py).
"""

# ruff: noqa: I001
from __future__ import annotations

import argparse
import json
import time

# bench first: it sets TensorFlow's environment (oneDNN) before Keras imports TensorFlow.
import bench  # noqa: F401
import keras
import numpy as np


class StepTimes(keras.callbacks.Callback):
    """Seconds between consecutive step ends of a bare ``fit`` (input waits included), skipping each
    epoch's first three steps (tracing, pipeline start)."""

    def __init__(self):
        super().__init__()
        self.steps: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.last, self.index = None, 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.last is not None and self.index >= 3:
            self.steps.append(now - self.last)
        self.last, self.index = now, self.index + 1


def _mean(values) -> float:
    """Mean seconds per step: under uneven load a median picks one mode of a two-mode distribution and
    stops matching the wall time (seen here: a median-based 453 img/s for a side whose passes took 104 s)."""
    return float(np.mean(values)) if len(values) else float("nan")


def run_bench(args, data):
    """bench's side: a cpu recipe resolved to the parity settings, trained by the Trainer."""
    from bench.recipe_load import load_recipe
    from bench.inference.classifier import predict_probs
    from bench.train import Trainer, build_for_recipe, prepare_splits

    overrides = [  # pinned, so both sides train alike whatever the recipe's own optimizer and data settings
        "phases.0.optimizer=adamw",
        "phases.0.learning_rate=1e-3",
        "phases.0.weight_decay=1e-3",
        "phases.0.schedule=cosine",
        "phases.0.min_lr_fraction=0.01",
        "phases.0.warmup_epochs=0",
        "phases.0.label_smoothing=0.0",
        "data.augment.enabled=false",
        "class_weights.scheme=none",
        "data.oversample=0.0",
        "data.batch_size=64",
        "run.budget_minutes=0",
        "run.steps_per_epoch=0",
        f"run.seed={args.seed}",
        f"phases.0.epochs={args.passes}",
        "phases.0.early_stopping_patience=0",
        f"data.max_train={args.max_train}",
    ]
    recipe = load_recipe(args.recipe, overrides, {"model.backbone": args.backbone, "model.head": args.head})
    model, _, _ = build_for_recipe(recipe)
    splits = prepare_splits(data, recipe)
    trainer = Trainer(model, recipe, splits)
    tic = time.perf_counter()
    result = trainer.run()
    wall = time.perf_counter() - tic
    probs = predict_probs(model, splits.x_test)
    return recipe, splits, probs, trainer.timer.seconds_per_step, wall, result


def run_bare(args, recipe, splits):
    """The bare side: ``model.fit`` on arrays, the same initial weights, optimizer, batch and passes."""
    from bench.train import build_for_recipe

    from bench.train import make_optimizer, make_schedule

    model, _, _ = build_for_recipe(recipe)  # seeds first: identical start
    phase = recipe.phases[0]
    steps = -(-len(splits.y_train) // recipe.data.batch_size)  # fit on arrays keeps the partial last batch
    optimizer = make_optimizer(phase, make_schedule(phase, steps, args.passes))  # the same AdamW + cosine
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", jit_compile=False)
    x = splits.x_train[..., None].astype("float32")
    y = keras.utils.to_categorical(splits.y_train, 7)
    timer = StepTimes()
    tic = time.perf_counter()
    model.fit(x, y, batch_size=recipe.data.batch_size, epochs=args.passes, shuffle=True, verbose=0, callbacks=[timer])
    wall = time.perf_counter() - tic
    probs = model.predict(splits.x_test[..., None].astype("float32"), batch_size=256, verbose=0)
    return probs, _mean(timer.steps), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--backbone", default="baseline_cnn")
    parser.add_argument("--head", default="mlp")
    parser.add_argument("--recipe", default="cpu")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-train", type=int, default=0, help="use at most this many training images")
    args = parser.parse_args()

    from bench.data import load_data
    from bench.metrics import evaluate

    data = load_data(args.data)
    recipe, splits, bench_probs, bench_step, bench_wall, result = run_bench(args, data)
    bare_probs, bare_step, bare_wall = run_bare(args, recipe, splits)
    bs = recipe.data.batch_size
    bench_m, bare_m = evaluate(splits.y_test, bench_probs), evaluate(splits.y_test, bare_probs)
    print(
        f"{args.backbone}+{args.head}, {args.passes} passes over {len(splits.y_train)} images, batch {bs}, "
        f"seed {args.seed}; bench restored epoch {_best_epoch(result)} of {args.passes} (best val loss)"
    )
    print("side  | test macro-F1 | accuracy | steady img/s | wall s per pass")
    for name, m, step, wall in (("bench", bench_m, bench_step, bench_wall), ("bare", bare_m, bare_step, bare_wall)):
        print(f"{name:5} | {m['macro_f1']:.4f} | {m['accuracy']:.4f} | {bs / step:.1f} | {wall / args.passes:.1f}")
    diff = bench_m["macro_f1"] - bare_m["macro_f1"]
    ratio = bare_step / bench_step
    print(
        f"macro-F1 difference {diff:+.4f} (target within +-0.02: {'met' if abs(diff) <= 0.02 else 'MISSED'}); "
        f"speed ratio bench/bare {ratio:.3f} (target >= 0.95: {'met' if ratio >= 0.95 else 'MISSED'})"
    )
    figures = {"model": f"{args.backbone}+{args.head}", "passes": args.passes, "seed": args.seed}
    for name, m, step, wall in (("bench", bench_m, bench_step, bench_wall), ("bare", bare_m, bare_step, bare_wall)):
        figures[name] = {
            "macro_f1": m["macro_f1"],
            "accuracy": m["accuracy"],
            "images_per_second": bs / step,
            "wall_s_per_pass": wall / args.passes,
        }
    figures.update(macro_f1_difference=diff, speed_ratio=ratio, targets_met=bool(abs(diff) <= 0.02 and ratio >= 0.95))
    print(json.dumps(figures))  # the same figures, machine-readable


def _best_epoch(result) -> int:
    losses = result.history.get("val_loss", [])
    return 1 + min(range(len(losses)), key=losses.__getitem__) if losses else 0


if __name__ == "__main__":
    main()
