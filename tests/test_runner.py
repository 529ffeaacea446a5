"""The runner's keep-then-log protocol: the trained model and its record survive a failed logging step."""

import keras
import numpy as np
import pytest

from bench import runner
from bench.models import build_model


class _RecordingRun:
    """The slice of TrackedRun that _log_evaluation uses."""

    def __init__(self):
        self.logged, self.tags = {}, {}

    def metrics(self, values, step=None):
        self.logged.update(values)

    def set_tags(self, tags):
        self.tags.update(tags)


def _evaluated(tmp_path, tta: str, calibrate: bool):
    """_log_evaluation of a tiny untrained model on random faces under ``recipe.eval``."""
    from types import SimpleNamespace

    from bench import CLASS_NAMES
    from bench.config import Recipe
    from bench.recipe_load import from_dict

    keras.utils.set_random_seed(0)
    model, spec = build_model(backbone="baseline_cnn", head="linear")
    recipe = from_dict(Recipe, {"eval": {"tta": tta, "calibrate": calibrate}, "data": {"augment": {"crop_padding": 3}}})
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 48, 48)).astype(np.uint8)
    y = rng.integers(0, 7, 40)
    splits = SimpleNamespace(x_val=x[:20], y_val=y[:20], x_test=x[20:], y_test=y[20:], class_names=CLASS_NAMES)
    fit = SimpleNamespace(model=model, splits=splits, spec=spec, recipe=recipe)
    history = {"loss": [1.0], "accuracy": [0.2], "val_loss": [1.1], "val_accuracy": [0.2], "val_macro_f1": [0.1]}
    result = SimpleNamespace(history=history, phase_starts=[0], end_epoch=1)
    run = _RecordingRun()
    test_metrics = runner._log_evaluation(run, fit, result, tmp_path)
    with np.load(tmp_path / "predictions.npz") as z:
        saved = {k: z[k] for k in z.files}
    return run, test_metrics, saved, model, splits


@pytest.mark.parametrize("tta", ["none", "flip", "crops"])
@pytest.mark.parametrize("calibrate", [False, True])
def test_evaluation_follows_the_recipes_tta_and_calibration(tmp_path, tta, calibrate):
    from bench.calibration import apply_temperature, fit_temperature
    from bench.inference.classifier import FaceClassifier
    from bench.inference.tta import view_probs
    from bench.metrics import evaluate

    run, test_metrics, saved, model, splits = _evaluated(tmp_path, tta, calibrate)
    logged = run.logged
    assert run.tags == {"bench.tta": tta}
    model.set_temperature(1.0)
    raw = {
        s: view_probs(lambda v: model.predict(v, verbose=0), getattr(splits, f"x_{s}"), tta, 3) for s in ("val", "test")
    }
    temperature = fit_temperature(splits.y_val, raw["val"]) if calibrate else 1.0  # fitted on val alone
    for split in ("val", "test"):
        expected = apply_temperature(raw[split], temperature).mean(0)
        np.testing.assert_allclose(saved[f"{split}_y_prob"], expected, atol=1e-5)
        truth = getattr(splits, f"y_{split}")
        assert logged[f"{split}_log_loss"] == pytest.approx(evaluate(truth, expected)["log_loss"], rel=1e-4)
    assert test_metrics["macro_f1"] == logged["test_macro_f1"]
    if calibrate:
        assert logged["temperature"] == pytest.approx(temperature, rel=1e-3)
        for key in ("test_log_loss_uncalibrated", "test_ece_uncalibrated", "val_log_loss_uncalibrated"):
            assert key in logged
        uncalibrated = evaluate(splits.y_test, raw["test"].mean(0))
        assert logged["test_log_loss_uncalibrated"] == pytest.approx(uncalibrated["log_loss"], rel=1e-4)
        assert logged["val_log_loss"] <= logged["val_log_loss_uncalibrated"] + 1e-9  # NLL minimised on val
    else:
        assert not any("uncalibrated" in k or k == "temperature" for k in logged)
    if tta == "none":
        assert not any(k.startswith("test_plain_") for k in logged)
    else:
        plain = evaluate(splits.y_test, apply_temperature(raw["test"][0], temperature))
        assert logged["test_plain_macro_f1"] == pytest.approx(plain["macro_f1"])
        assert logged["test_plain_accuracy"] == pytest.approx(plain["accuracy"])
    # the model keeps the temperature, so what it predicts (and saves) with the run's TTA is what was scored
    model.set_temperature(logged.get("temperature", 1.0))
    np.testing.assert_allclose(FaceClassifier(model, tta, 3)(splits.x_test), saved["test_y_prob"], atol=1e-5)
    keras.backend.clear_session()


@pytest.mark.slow
def test_bench_run_with_flip_tta_and_calibration_logs_and_saves_the_calibrated_model(tmp_path):
    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from bench import tracking as trk
    from bench.cli import cli
    from bench.data.sources import load_for_recipe
    from bench.inference.classifier import FaceClassifier, load_keras_model
    from bench.plan import resolve_recipe
    from bench.train.splits import prepare_splits

    tiny = ["run.budget_minutes=0", "phases.0.epochs=1", "run.steps_per_epoch=2", "data.max_train=64"]
    overrides = ["eval.tta=flip", "eval.calibrate=true", *tiny, "data.max_eval=96"]
    args = ["run", "--recipe", "cpu", "--backbone", "baseline_cnn", "--data", "synthetic", "--experiment", "cal"]
    result = CliRunner().invoke(cli, [*args, *(a for o in overrides for a in ("--set", o)), "-q"])
    assert result.exit_code == 0, result.output
    trk.connect(None)
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("cal").experiment_id])
    metrics, tags = run.data.metrics, run.data.tags
    assert tags["bench.tta"] == "flip" and run.data.params["recipe.eval.calibrate"] == "True"
    for key in ("test_plain_macro_f1", "test_plain_accuracy", "test_log_loss_uncalibrated", "test_ece_uncalibrated"):
        assert key in metrics, key
    assert 0.05 <= metrics["temperature"] <= 20 and metrics["val_log_loss"] <= metrics["val_log_loss_uncalibrated"]
    model = load_keras_model(client.download_artifacts(run.info.run_id, "model.keras", str(tmp_path)))
    assert model.temperature == pytest.approx(metrics["temperature"])
    with np.load(client.download_artifacts(run.info.run_id, "predictions.npz", str(tmp_path))) as z:
        logged_probs = z["test_y_prob"]
    recipe = resolve_recipe("cpu", overrides, backbone="baseline_cnn", data="synthetic")
    splits = prepare_splits(load_for_recipe(recipe), recipe)
    # the saved model with the run's TTA gives the calibrated probabilities the run was scored on
    np.testing.assert_allclose(FaceClassifier(model, "flip")(splits.x_test), logged_probs, atol=1e-5)
