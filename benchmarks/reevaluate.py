"""Re-evaluate logged runs under every test-time augmentation and with a fitted temperature, no retraining.

For each ``--run``: its saved model (``model.keras``), its recipe (``recipe.toml``) and its data (the path
it logged) give the same validation and test splits; a calibrated run's model is scored without its
temperature. The script prints, per TTA mode (none, flip, and
crops at ``--crop-padding`` pixels), test macro-F1, accuracy, and log loss / ECE before and after a
temperature fitted on the validation split (PublicTest) only. What ``recipe.eval`` would have logged had
the run been trained with it, for runs trained before it existed or to choose its setting (on val, never
on test: the script prints val macro-F1 beside test for that reason).

    python benchmarks/reevaluate.py --tracking-uri sqlite:////work/runs/mlflow.db --run RUN_ID [--run ...]

Prints one JSON line per run and mode, then a table.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click


def reevaluate(run_id: str, crop_padding: int, modes: tuple[str, ...] = ("none", "flip", "crops")) -> list[dict]:
    """The figures of one logged run under each TTA mode (see the module docstring)."""
    import keras

    from bench import run_record as rec
    from bench import tracking as trk
    from bench.calibration import apply_temperature, fit_temperature
    from bench.data import load_data
    from bench.inference.classifier import predict_probs
    from bench.inference.tta import view_probs
    from bench.metrics import calibration_metrics, evaluate
    from bench.models import register_serializable_layers
    from bench.plan import resolve_recipe
    from bench.train.splits import prepare_splits

    register_serializable_layers()
    logged = trk.find_run(run_id)
    source = logged.data.tags.get(rec.DATA_PATH_TAG) or logged.data.params[rec.DATA_SOURCE]
    with tempfile.TemporaryDirectory() as tmp:
        recipe_path = trk.download_artifact(run_id, rec.RECIPE_ARTIFACT, Path(tmp))
        recipe = resolve_recipe(str(recipe_path), backbone=logged.data.params[rec.BACKBONE], data=source)
        model = keras.saving.load_model(trk.download_artifact(run_id, rec.MODEL_ARTIFACT, Path(tmp)))
    if getattr(model, "temperature", 1.0) != 1.0:  # a calibrated run's model: score it untempered, then fit T
        model.set_temperature(1.0)
    data = load_data(source)
    splits = prepare_splits(data, recipe)
    names, k = splits.class_names, len(splits.class_names)
    rows = []
    for mode in modes:
        views = {
            split: view_probs(lambda v: predict_probs(model, v), x, mode, crop_padding)
            for split, x in (("val", splits.x_val), ("test", splits.x_test))
        }
        temperature = fit_temperature(splits.y_val, views["val"])
        test = views["test"].mean(axis=0)
        calibrated = apply_temperature(views["test"], temperature).mean(axis=0)
        scores = evaluate(splits.y_test, test, names)
        before, after = calibration_metrics(splits.y_test, test, k), calibration_metrics(splits.y_test, calibrated, k)
        rows.append(
            {
                "run": run_id,
                "tta": mode,
                "val_macro_f1": evaluate(splits.y_val, views["val"].mean(axis=0), names)["macro_f1"],
                "test_macro_f1": scores["macro_f1"],
                "test_accuracy": scores["accuracy"],
                "temperature": temperature,
                "log_loss": before["log_loss"],
                "ece": before["ece"],
                "log_loss_calibrated": after["log_loss"],
                "ece_calibrated": after["ece"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


@click.command()
@click.option("--run", "runs", multiple=True, required=True, help="An MLflow run id (repeatable).")
@click.option("--tracking-uri", default=None, help="The runs' store (default: ./mlruns).")
@click.option("--crop-padding", default=4, show_default=True, type=click.IntRange(1, 16), help="crops' shift.")
@click.option(
    "--tta", "modes", multiple=True, type=click.Choice(["none", "flip", "crops"]), help="Modes (default: all three)."
)
def main(runs: tuple[str, ...], tracking_uri: str | None, crop_padding: int, modes: tuple[str, ...]) -> None:
    from bench import tracking as trk

    trk.connect(tracking_uri, create=False)
    modes = modes or ("none", "flip", "crops")
    rows = [row for run_id in runs for row in reevaluate(run_id, crop_padding, modes)]
    click.echo(
        f"\n{'run':<10} {'tta':<6} {'val F1':>7} {'test F1':>8} {'acc':>6} {'T':>5} {'LL':>6} {'ECE':>6} "
        f"{'LL cal':>7} {'ECE cal':>8}"
    )
    for r in rows:
        click.echo(
            f"{r['run'][:8]:<10} {r['tta']:<6} {r['val_macro_f1']:7.4f} {r['test_macro_f1']:8.4f} "
            f"{r['test_accuracy']:6.4f} {r['temperature']:5.2f} {r['log_loss']:6.3f} {r['ece']:6.3f} "
            f"{r['log_loss_calibrated']:7.3f} {r['ece_calibrated']:8.3f}"
        )


if __name__ == "__main__":
    main()
