"""A wall-clock budget on a machine whose load changes: the plan fixed after the first epoch vs re-fitted
at every epoch end (issue 12; ``bench.train.budget.Budget``, asked by the trainer's Replanner).

The same budgeted run twice, from the same seed: while its first epoch trains, ``--hogs`` busy
processes share the cores (another user's job), and they stop when that epoch ends. The first epoch
then looks slow, and the plan made from it is too short for the machine the rest of the run gets.
With re-planning off (the plan fixed after epoch 1, as bench's trainer planned before it re-planned) the
run ends early and leaves budget unused; with it on, the plan grows back once the fast epochs are timed.
Printed per mode: epochs planned after the first epoch and at the end, re-plans, training seconds used
of the budget, the learning rate at the end against the cosine's floor, and test macro-F1.

    python benchmarks/investigations/budget_replan.py --data synthetic:6000:0 --minutes 4      # ~9 min on 2 cores
    python benchmarks/investigations/budget_replan.py --data ../shared/data/fer2013/fer2013.csv.gz --minutes 10

Run it on an otherwise idle machine: other load would change both modes' timings.
"""

# ruff: noqa: I001
from __future__ import annotations

import argparse
import multiprocessing
import time

# bench first: it sets TensorFlow's environment (oneDNN) before Keras imports TensorFlow.
import bench  # noqa: F401
import keras


def _spin() -> None:
    while True:
        pass


class StopHogsAfterFirstEpoch(keras.callbacks.Callback):
    """Ends the busy processes when the run's first epoch ends, and records the plan made from it."""

    def __init__(self, hogs, trainer):
        super().__init__()
        self.hogs, self.trainer, self.fits, self.first_plan = hogs, trainer, 0, None

    def on_epoch_end(self, epoch, logs=None):
        for hog in self.hogs:
            hog.terminate()
            hog.join()
        self.hogs = []

    def on_train_begin(self, logs=None):
        self.fits += 1
        if self.fits == 2:  # the second fit starts right after the first epoch's calibration
            self.first_plan = list(self.trainer.plan)


def train(args, data, replan: bool) -> dict:
    from bench.recipe_load import load_recipe
    from bench.inference.classifier import predict_probs
    from bench.metrics import evaluate
    from bench.train import Trainer, build_for_recipe, prepare_splits

    overrides = [f"run.budget_minutes={args.minutes}", f"run.seed={args.seed}", *args.set]
    recipe = load_recipe(args.recipe, overrides, {"model.backbone": args.backbone, "model.head": args.head})
    model, _, _ = build_for_recipe(recipe)
    splits = prepare_splits(data, recipe)
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    trainer = Trainer(model, recipe, splits)
    if not replan:  # the plan stays the first epoch's; the run stops where it ends (or at the deadline)
        trainer.budget.replanning = False
    watcher = StopHogsAfterFirstEpoch(hogs, trainer)
    trainer.extra_callbacks.append(watcher)
    result = trainer.run()
    phase = recipe.phases[0]
    return {
        "mode": "re-plan every epoch" if replan else "plan fixed after epoch 1",
        "first_plan": watcher.first_plan or list(trainer.plan),
        "final_plan": result.planned_epochs,
        "epochs": result.actual_epochs,
        "replans": result.replans,
        "used": result.train_seconds / (args.minutes * 60),
        "last_rate": result.history["learning_rate"][-1],
        "floor": phase.learning_rate * phase.min_lr_fraction,
        "macro_f1": evaluate(splits.y_test, predict_probs(model, splits.x_test))["macro_f1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--backbone", default="baseline_cnn")
    parser.add_argument("--head", default="mlp")
    parser.add_argument("--recipe", default="cpu")
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget of each run")
    parser.add_argument("--hogs", type=int, default=4, help="busy processes during the first epoch")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="recipe override")
    args = parser.parse_args()

    from bench.data import load_data

    data = load_data(args.data)
    rows = []
    for replan in (False, True):
        tic = time.perf_counter()
        rows.append(train(args, data, replan))
        print(f"{rows[-1]['mode']}: done in {time.perf_counter() - tic:.0f} s", flush=True)
    print(
        f"{args.backbone}+{args.head}, recipe {args.recipe}, {args.minutes} min budget, "
        f"{args.hogs} busy processes during epoch 1"
    )
    print(
        "mode | plan after epoch 1 | final plan | epochs run | re-plans | budget used | last rate / floor "
        "| test macro-F1"
    )
    for r in rows:
        print(
            f"{r['mode']} | {r['first_plan']} | {r['final_plan']} | {r['epochs']} | {r['replans']} | "
            f"{r['used']:.0%} | {r['last_rate'] / r['floor']:.2f} | {r['macro_f1']:.3f}"
        )


if __name__ == "__main__":
    main()
