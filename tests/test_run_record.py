"""The run record: every name a run writes keeps the value stored runs were logged with."""

from types import SimpleNamespace

import pytest

from bench import run_record as rec


def test_the_names_stored_runs_are_read_back_by_keep_their_values():
    assert rec.CONFIG_KEYS == ("backbone", "head", "recipe", "recipe_hash", "weights", "image_size")
    assert rec.COST_METRICS == (
        "params_total",
        "fit_seconds",
        "train_images_per_second",
        "latency_ms_p50",
        "flops_per_image",
        "train_passes",
    )
    assert rec.CURVES == ("loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1", "learning_rate")
    tags = (rec.CHECKPOINT_DIR_TAG, rec.DATA_PATH_TAG, rec.LABEL_SET_TAG, rec.TTA_TAG, rec.KIND_TAG)
    assert tags == ("bench.checkpoint_dir", "bench.data_path", "bench.label_set", "bench.tta", "bench.kind")
    assert (rec.RECIPE_ARTIFACT, rec.PREDICTIONS_ARTIFACT, rec.MODEL_ARTIFACT) == (
        "recipe.toml",
        "predictions.npz",
        "model.keras",
    )
    assert rec.split_metric("test", "macro_f1") == "test_macro_f1" and rec.fingerprint_param("val") == "val_fingerprint"
    assert rec.prediction_keys("val") == ("val_y_true", "val_y_prob")
    study = (rec.PARENT_RUN_TAG, rec.STUDY_TAG, rec.TRIAL_TAG, rec.BEST_VAL_MACRO_F1, rec.TUNED_RECIPE_TAG)
    assert study == ("mlflow.parentRunId", "optuna.study", "optuna.trial", "best_val_macro_f1", "tuned_recipe")


def test_the_checkpoint_folder_keeps_its_file_names():
    """A checkpoint written by an older bench must still resume: its files are found by these names."""
    names = (rec.WEIGHTS_FILE, rec.STATE_FILE, rec.OPTIMIZER_FILE, rec.EMA_FILE)
    assert names == ("weights.weights.h5", "state.json", "optimizer.npz", "ema.npz")
    assert (rec.TRAINED_WEIGHTS_FILE, rec.TRAINED_STATE_FILE) == ("trained.weights.h5", "trained.json")
    assert rec.best_weights_file(1, 7) == "best-1-7.weights.h5"
    assert rec.BEST_WEIGHTS_GLOB == "best-*.weights.h5"


@pytest.mark.parametrize("recomputed", [False, True])
def test_training_metrics_name_a_train_results_figures(recomputed):
    timing = {"train_seconds": 10.0, "images_per_second": 300.0, "input_wait_fraction": 0.1, "train_passes": 1.5}
    batchnorm = {"batchnorm_recomputed": 4, "batchnorm_seconds": 0.5}
    result = SimpleNamespace(
        **timing, **batchnorm, planned_epochs=[2, 3], actual_epochs=[2, 1], replans=1, budget_hit=True
    )
    metrics = rec.training_metrics(result, recomputed)
    assert metrics["fit_seconds"] == 10.0 and metrics["train_images_per_second"] == 300.0
    assert metrics["epochs_planned"] == 5 and metrics["epochs_actual"] == 3 and metrics["budget_replans"] == 1
    assert ("batchnorm_layers_recomputed" in metrics) is recomputed
    assert rec.training_tags(result) == {
        "epochs_planned_per_phase": [2, 3],
        "epochs_actual_per_phase": [2, 1],
        "budget_hit": True,
    }
    assert rec.cost_metrics(1e6, (2.0, 3.0)) == {"flops_per_image": 1e6, "latency_ms_p50": 2.0, "latency_ms_p95": 3.0}


def test_run_params_name_the_recipe_the_data_and_the_splits():
    import numpy as np

    from bench.config import Recipe
    from bench.recipe_io import recipe_hash
    from bench.recipe_load import from_dict

    recipe = from_dict(Recipe, {"model": {"backbone": "baseline_cnn", "head": "linear"}})
    x, y = np.zeros((4, 48, 48), np.uint8), np.array([0, 1, 2, 3])
    splits = SimpleNamespace(
        x_val=x, y_val=y, x_test=x, y_test=y, y_train=y, class_names=("a", "b", "c", "d"), n_deduped=0
    )
    splits.class_weights = np.ones(4)
    data = SimpleNamespace(source="synthetic", protocol="p", class_names=("a", "b", "c", "d"), fingerprint=lambda: "f")
    params = rec.run_params(recipe, SimpleNamespace(image_size=48), splits, data)
    assert params["backbone"] == "baseline_cnn" and params["recipe_hash"] == recipe_hash(recipe)
    assert params["recipe.model.head"] == "linear" and params["class_names"] == "a,b,c,d"
    assert params["val_fingerprint"] == params["test_fingerprint"] and params["n_train"] == 4
    assert params[rec.DEVICES] == 1 and params["recipe.run.devices"] == 0  # all local devices, resolved to one
    assert rec.run_params(recipe, SimpleNamespace(image_size=48), splits, data, devices=2)[rec.DEVICES] == 2
