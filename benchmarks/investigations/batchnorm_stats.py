"""What a trained model's BatchNorm statistics cost it: saved bench runs scored with three sets of statistics,
their weights unchanged (issue 12; ``model.batchnorm_stats``).

- ``moving``: the statistics the run saved (Keras' moving averages over its training batches, augmented
  when its recipe augments);
- ``recomputed``: averaged over one pass of the un-augmented training images
  (:func:`bench.batchnorm.recompute_statistics`, what ``model.batchnorm_stats = "recomputed"`` does after
  training);
- ``recomputed_augmented``: the same pass in the same shuffled order, each batch augmented as the run's
  recipe augments (augmentation seed 0) — so a gain of ``recomputed`` over ``moving`` can be told apart
  from averaging over a whole pass at all.

Each RUN_DIR is a folder with the run's ``model.keras`` and ``recipe.toml`` (a bench run's MLflow artifacts
folder); the splits are the recipe's (``dedupe``, ``max_train``, ``max_eval`` honoured) of ``--data``.

    python benchmarks/investigations/batchnorm_stats.py --data ../shared/data/fer2013/fer2013.csv.gz
        RUN_DIR [RUN_DIR ...] [--json FILE]

Prints one line per run and setting (validation and test accuracy and macro-F1) as it goes. About a
minute per run and setting on the 2-core CPU for mini_xception (a forward pass over the 28,709 training
images, then the two evaluation splits).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

SETTINGS = ("moving", "recomputed", "recomputed_augmented")


def score(model, splits) -> dict[str, float]:
    """Accuracy and macro-F1 on the validation and test splits."""
    from bench.inference.classifier import predict_probs
    from bench.metrics import evaluate

    figures = {}
    for name, x, y in (("val", splits.x_val, splits.y_val), ("test", splits.x_test, splits.y_test)):
        probs = predict_probs(model, x)
        metrics = evaluate(y, probs, splits.class_names)
        figures[f"{name}_accuracy"], figures[f"{name}_macro_f1"] = metrics["accuracy"], metrics["macro_f1"]
    return figures


def measure(run_dir: Path, data) -> list[dict]:
    """The three settings for one run, each from the saved weights."""
    from bench.batchnorm import recompute_statistics
    from bench.data.augment import build_augmenter
    from bench.inference.classifier import load_keras_model
    from bench.recipe_load import load_recipe
    from bench.run_record import MODEL_ARTIFACT, RECIPE_ARTIFACT
    from bench.train import prepare_splits

    recipe = load_recipe(str(run_dir / RECIPE_ARTIFACT))
    splits = prepare_splits(data, recipe)
    rows = []
    for setting in SETTINGS:
        model = load_keras_model(run_dir / MODEL_ARTIFACT)
        tic, layers = time.perf_counter(), 0
        if setting == "recomputed":
            layers = recompute_statistics(model, splits.x_train, seed=recipe.run.seed)
        elif setting == "recomputed_augmented":
            augment = build_augmenter(recipe.data.augment, 0)
            if augment is None:
                print(f"{run_dir.parent.name[:8]} {setting}: the recipe does not augment; skipped", flush=True)
                continue
            layers = recompute_statistics(
                model, splits.x_train, seed=recipe.run.seed, transform=functools.partial(augment, training=True)
            )
        row = {"run": str(run_dir), "model": model.name, "setting": setting, "layers": layers}
        row.update(score(model, splits))
        row["seconds"] = time.perf_counter() - tic
        rows.append(row)
        print(
            f"{run_dir.parent.name[:8]} {model.name} {setting:21s} "
            f"val acc {row['val_accuracy']:.4f} F1 {row['val_macro_f1']:.4f} | "
            f"test acc {row['test_accuracy']:.4f} F1 {row['test_macro_f1']:.4f} | {layers} layers, "
            f"{row['seconds']:.0f} s",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="folders holding a run's model.keras and recipe.toml")
    parser.add_argument("--data", required=True, help="the data set the runs trained on")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    from bench.run_record import MODEL_ARTIFACT, RECIPE_ARTIFACT

    for folder in args.run_dirs:
        missing = [name for name in (MODEL_ARTIFACT, RECIPE_ARTIFACT) if not (folder / name).is_file()]
        if missing:
            parser.error(f"{folder}: no {missing[0]}; pass a bench run's artifacts folder")
    from bench.data import load_data

    data = load_data(args.data)
    rows = [row for folder in args.run_dirs for row in measure(folder, data)]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
