"""How a trained model is evaluated (``recipe.eval``): the probabilities of each test-time augmentation
view, then temperature scaling fitted on the validation split, the metrics and the files of an evaluated
run. :mod:`bench.runner` logs what these return; they log nothing themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import run_record as rec
from bench.calibration import apply_temperature, fit_temperature
from bench.config import Recipe
from bench.inference.tta import view_probs
from bench.metrics import calibration_metrics, classification_report, confusion, evaluate


def evaluation_views(recipe: Recipe, images: np.ndarray, predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(views, n, classes): ``predict`` (faces -> probabilities, one prediction pass) of every view
    ``recipe.eval.tta`` averages, the face itself first (so ``[0]`` is the plain prediction)."""
    return view_probs(predict, images, recipe.eval.tta, recipe.data.augment.crop_padding)


PLAIN_METRICS = ("macro_f1", "accuracy", "balanced_accuracy", "kappa", "log_loss", "ece")
"""Logged as ``test_plain_*`` beside a TTA run's headline metrics: the same model without TTA."""


def calibrate_views(model, recipe: Recipe, views: dict, truth: dict, num_classes: int) -> tuple[dict, dict[str, float]]:
    """With ``recipe.eval.calibrate``: fit the temperature on the validation views only (never test), set it
    on the model (so the saved model carries it) and return the tempered views, with the temperature and
    every split's log loss and ECE before it. Without: the views unchanged and no metrics."""
    if not recipe.eval.calibrate:
        return views, {}
    temperature = fit_temperature(truth["val"], views["val"])
    model.set_temperature(temperature)
    metrics = {"temperature": temperature}
    for split, split_views in views.items():
        if len(truth[split]):
            raw = calibration_metrics(truth[split], split_views.mean(axis=0), num_classes)
            metrics.update({f"{split}_{k}_uncalibrated": v for k, v in raw.items()})
    return {split: apply_temperature(v, temperature) for split, v in views.items()}, metrics


@dataclass
class Evaluation:
    """A trained model scored on val and test as ``recipe.eval`` says: the metrics to log (``val_*``,
    ``test_*``, ``test_plain_*`` beside TTA, the temperature's), its tags, and the labels and averaged
    probabilities behind them (what :func:`write_evaluation_files` keeps)."""

    metrics: dict[str, float]
    tags: dict[str, str]
    truth: dict[str, np.ndarray]
    probs: dict[str, np.ndarray]
    class_names: tuple[str, ...]

    @property
    def test_metrics(self) -> dict[str, float]:
        """The test split's metrics without their prefix: what a run's summary shows."""
        return {k.removeprefix("test_"): v for k, v in self.metrics.items() if k.startswith("test_")}


def evaluate_trained(model, recipe: Recipe, splits, predict: Callable) -> Evaluation:
    """Score ``model`` on ``splits``' val and test faces: the TTA views ``predict(model, faces)`` gives,
    then a temperature fitted on val (``recipe.eval``)."""
    names = splits.class_names
    truth = {"val": splits.y_val, "test": splits.y_test}
    images = {"val": splits.x_val, "test": splits.x_test}
    views = {split: evaluation_views(recipe, x, lambda v: predict(model, v)) for split, x in images.items()}
    untempered = views
    views, metrics = calibrate_views(model, recipe, views, truth, len(names))
    probs = {split: v.mean(axis=0).astype(np.float32) for split, v in views.items()}
    for split in ("val", "test"):
        if len(truth[split]):
            scores = evaluate(truth[split], probs[split], names)
            metrics.update({rec.split_metric(split, k): v for k, v in scores.items()})
    if recipe.eval.tta != "none" and len(truth["test"]):
        # the same model without TTA and without the temperature fitted to the TTA average
        plain = evaluate(truth["test"], untempered["test"][0], names)
        metrics.update({rec.split_metric("test_plain", k): plain[k] for k in PLAIN_METRICS})
    return Evaluation(metrics, {rec.TTA_TAG: recipe.eval.tta}, truth, probs, tuple(names))


def write_evaluation_files(ev: Evaluation, folder: Path, title: str, result, phase_names: list[str]) -> None:
    """The run's evaluation artifacts in ``folder``: the predictions (what ``bench compare`` pairs runs
    on), the classification report and figures of the test split (val without one), the training curves."""
    from bench import plots

    names = ev.class_names
    arrays = {}
    for split in ("test", "val"):
        y_true, y_prob = rec.prediction_keys(split)
        arrays.update({y_true: ev.truth[split], y_prob: ev.probs[split]})
    np.savez_compressed(folder / rec.PREDICTIONS_ARTIFACT, **arrays, class_names=np.array(names))
    main = "test" if len(ev.truth["test"]) else "val"
    y, p = ev.truth[main], ev.probs[main]
    (folder / rec.REPORT_ARTIFACT).write_text(f"{main} split\n" + classification_report(y, p, names))
    confusion_path = folder / rec.CONFUSION_ARTIFACT
    plots.confusion_matrix_plot(confusion(y, p, len(names)), confusion_path, names, title=f"{title} ({main})")
    support = np.bincount(y, minlength=len(names))
    plots.recall_bars(ev.metrics, folder / rec.RECALL_ARTIFACT, names, prefix=f"{main}_", support=support, title=title)
    plots.training_curves(
        result.history, result.phase_starts, folder / rec.CURVES_ARTIFACT, phase_names=phase_names, title=title
    )
    plots.reliability_diagram(y, p, folder / rec.RELIABILITY_ARTIFACT)
