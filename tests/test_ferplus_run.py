"""FER+ labels through the whole bench: recipe keys, splits and pipeline with soft targets, 8-class
models, runs, predict and export. The data-side rules (votes -> labels) are tested in test_ferplus.py."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench import CLASS_NAMES
from bench.cli import cli
from bench.config import check_class_names
from bench.data import load_data
from bench.data.dataset import FerData
from bench.data.ferplus import FERPLUS_CLASS_NAMES, TO_BENCH, VOTES_FILE
from bench.data.pipeline import make_dataset
from bench.data.synthetic import write_csv
from bench.data.weights import class_weights
from bench.errors import BenchError
from bench.recipe_load import load_recipe
from bench.train.splits import prepare_splits
from tests.test_cli import MINI_TOML
from tests.test_ferplus import write_votes

COLUMN_OF = {int(c): j for j, c in enumerate(TO_BENCH)}  # bench class id -> FER+ vote column


def synthetic_ferplus(folder: Path, n: int = 300, seed: int = 1) -> Path:
    """A synthetic FER2013 CSV with a FER+ votes file beside it: each face gets 7 votes for its own
    class and 3 for the next one (so soft targets differ from one-hot), every 6th face is contempt."""
    path = write_csv(folder / "fer2013.csv", n, seed=seed)
    labels = load_data(path, cache=False).labels
    rows = []
    for i, label in enumerate(labels):
        counts = [0] * 10
        main = COLUMN_OF[7] if i % 6 == 0 else COLUMN_OF[int(label)]
        counts[main] += 7
        counts[(main + 1) % 8] += 3
        rows.append(counts)
    write_votes(folder / VOTES_FILE, rows)
    return path


@pytest.fixture
def ferplus_csv(tmp_path):
    return synthetic_ferplus(tmp_path / "data")


@pytest.fixture
def mini(tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(MINI_TOML)
    return str(path)


def tiny_data(targets: bool) -> FerData:
    rng = np.random.default_rng(0)
    n = 64
    labels = np.arange(n) % 8
    soft = np.full((n, 8), 0.02, np.float32)
    soft[np.arange(n), labels] = 1 - 0.02 * 7
    return FerData(
        images=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        labels=labels,
        splits=np.array(["train", "val", "test", "train"] * (n // 4)),
        source="tiny",
        protocol="tiny",
        class_names=FERPLUS_CLASS_NAMES,
        label_set="ferplus",
        targets=soft if targets else None,
    )


# ----------------------------------------------------------------------------- recipe and data


def test_labels_option_and_recipe_keys_reach_load_data(ferplus_csv):
    from bench.data import load_for_recipe
    from bench.plan import resolve_recipe

    recipe = resolve_recipe("cpu", ["data.targets=crossentropy"], labels="ferplus", data=str(ferplus_csv))
    assert (recipe.data.labels, recipe.data.targets, recipe.data.votes) == ("ferplus", "crossentropy", "")
    data = load_for_recipe(recipe)
    assert data.label_set == "ferplus" and data.class_names == FERPLUS_CLASS_NAMES and data.targets.shape[1] == 8
    assert load_for_recipe(resolve_recipe("cpu", data=str(ferplus_csv))).class_names == CLASS_NAMES


def test_class_names_in_a_recipe_are_checked_against_the_data():
    boosted = load_recipe("cpu", ["class_weights.boost.contempt=2.0"])
    check_class_names(boosted, FERPLUS_CLASS_NAMES)
    with pytest.raises(BenchError, match="class_weights.boost: unknown class contempt; this data set's classes"):
        check_class_names(boosted, CLASS_NAMES)
    branches = load_recipe("cpu", ['model.head_options.hybrid.branch_classes=["contempt"]'])
    check_class_names(branches, FERPLUS_CLASS_NAMES)
    with pytest.raises(BenchError, match="branch_classes: unknown class contempt"):
        check_class_names(branches, CLASS_NAMES)


def test_class_weights_follow_the_data_classes_and_boost_contempt():
    labels = np.array([0, 3, 3, 7, 7, 7])
    weights = class_weights(labels, "balanced", boost={"contempt": 2.0}, class_names=FERPLUS_CLASS_NAMES)
    assert weights.shape == (8,) and weights[7] == pytest.approx(2 * 6 / (3 * 3))
    assert class_weights(labels[:3], "none").shape == (7,)
    with pytest.raises(ValueError, match="unknown classes"):
        class_weights(labels[:3], "none", boost={"contempt": 2.0})


@pytest.mark.parametrize("soft", [False, True])
def test_splits_keep_soft_targets_for_training_only(soft):
    data = tiny_data(soft)
    recipe = load_recipe("cpu", ["data.max_train=16"])
    splits = prepare_splits(data, recipe)
    assert splits.class_names == FERPLUS_CLASS_NAMES and splits.class_weights.shape == (8,)
    assert len(splits.y_train) == 16
    if soft:
        # the subset's targets are the rows of the same images (their majority label is the argmax)
        assert splits.t_train.shape == (16, 8)
        np.testing.assert_array_equal(splits.t_train.argmax(1), splits.y_train)
    else:
        assert splits.t_train is None


def test_pipeline_feeds_soft_targets_weighted_by_the_majority_class():
    labels = np.array([7, 1])
    targets = np.array([[0.1] * 7 + [0.3], [0, 0.6, 0.4, 0, 0, 0, 0, 0]], np.float32)
    weights = np.arange(8, dtype=np.float32)
    images = np.zeros((2, 48, 48), np.uint8)
    x, y, w = next(iter(make_dataset(images, labels, batch_size=2, weights=weights, targets=targets)))
    np.testing.assert_allclose(y.numpy(), targets)
    assert w.numpy().tolist() == [7.0, 1.0]
    _, onehot, _ = next(iter(make_dataset(images, labels, batch_size=2, weights=weights)))
    assert onehot.shape == (2, 8) and onehot.numpy()[0, 7] == 1  # one-hot width from the weights


# ----------------------------------------------------------------------------- model


def test_a_saved_model_keeps_its_class_names(tmp_path):
    import keras

    from bench.inference.classifier import load_keras_model, model_class_names
    from bench.models import build_model

    model, _ = build_model(backbone="baseline_cnn", head="linear", class_names=FERPLUS_CLASS_NAMES)
    assert model.output.shape[-1] == 8 and model.class_names == FERPLUS_CLASS_NAMES
    model.save(tmp_path / "m.keras")
    assert model_class_names(load_keras_model(tmp_path / "m.keras")) == FERPLUS_CLASS_NAMES
    old, _ = build_model(backbone="baseline_cnn", head="linear")
    del old.class_names  # a model saved before bench kept class names
    assert model_class_names(old) == CLASS_NAMES
    plain = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(5)])
    with pytest.raises(BenchError, match="5 outputs and no matching class names"):
        model_class_names(plain)


# ----------------------------------------------------------------------------- end to end


def _run(experiment: str):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path('mlruns/mlflow.db').resolve()}")
    exp = mlflow.get_experiment_by_name(experiment)
    (run,) = mlflow.search_runs([exp.experiment_id], output_format="list")
    return mlflow.MlflowClient(), run


@pytest.mark.parametrize("targets", ["majority", "crossentropy"])
def test_bench_run_on_ferplus_logs_eight_classes_and_its_label_set(mini, ferplus_csv, tmp_path, targets):
    args = ["run", "--recipe", mini, "--backbone", "baseline_cnn", "--data", str(ferplus_csv), "--labels", "ferplus"]
    args += ["--experiment", f"fp-{targets}", "--set", f"data.targets={targets}", "--set", "data.batch_size=16"]
    args += ["--set", "class_weights.boost.contempt=2.0", "-q"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    client, run = _run(f"fp-{targets}")
    assert run.info.status == "FINISHED"
    assert run.data.tags["bench.label_set"] == "ferplus"
    assert run.data.params["recipe.data.labels"] == "ferplus" and run.data.params["recipe.data.targets"] == targets
    assert run.data.params["class_names"] == ",".join(FERPLUS_CLASS_NAMES)
    assert {"test_recall_contempt", "val_recall_contempt", "test_f1_contempt"} <= set(run.data.metrics)
    with np.load(client.download_artifacts(run.info.run_id, "predictions.npz", str(tmp_path))) as z:
        assert z["test_y_prob"].shape[1] == 8 and tuple(z["class_names"]) == FERPLUS_CLASS_NAMES
        assert set(np.unique(z["test_y_true"])) <= set(range(8)) and 7 in z["test_y_true"]
    report = Path(client.download_artifacts(run.info.run_id, "classification_report.txt", str(tmp_path)))
    assert "contempt" in report.read_text()
    recipe = Path(client.download_artifacts(run.info.run_id, "recipe.toml", str(tmp_path))).read_text()
    assert 'labels = "ferplus"' in recipe and f'targets = "{targets}"' in recipe  # what --resume rebuilds from


def test_fer2013_runs_reject_a_contempt_boost_in_one_line(mini, ferplus_csv):
    args = ["run", "--recipe", mini, "--backbone", "baseline_cnn", "--data", str(ferplus_csv)]
    result = CliRunner().invoke(cli, [*args, "--set", "class_weights.boost.contempt=2.0"])
    assert result.exit_code != 0 and result.output.count("\n") == 1
    assert "unknown class contempt" in result.output
    result = CliRunner().invoke(cli, [*args, "--set", "data.targets=crossentropy"])
    assert result.exit_code != 0 and "--labels ferplus" in result.output


def test_predict_and_export_name_the_eight_ferplus_classes(tmp_path):
    from PIL import Image

    from bench.models import build_model

    model, _ = build_model(backbone="baseline_cnn", head="linear", class_names=FERPLUS_CLASS_NAMES)
    model.save(tmp_path / "fp.keras")
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(tmp_path / "crop.png")
    base = ["predict", "--model", str(tmp_path / "fp.keras"), "--no-detect"]
    result = CliRunner().invoke(cli, [*base, "--format", "csv", str(tmp_path / "crop.png")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    header, row = list(csv.reader(io.StringIO(result.stdout)))
    assert [h for h in header if h.startswith("p_")] == [f"p_{c}" for c in FERPLUS_CLASS_NAMES]
    assert sum(float(v) for v in row[-8:]) == pytest.approx(1, abs=1e-4)
    result = CliRunner().invoke(cli, [*base, "--format", "json", str(tmp_path / "crop.png")], catch_exceptions=False)
    report = json.loads(result.stdout)
    assert report["class_names"] == list(FERPLUS_CLASS_NAMES)
    assert list(report["faces"][0]["probabilities"]) == list(FERPLUS_CLASS_NAMES)
    result = CliRunner().invoke(
        cli,
        ["export", "--model", str(tmp_path / "fp.keras"), "--to", "tflite", "--out", str(tmp_path / "fp.tflite")],
    )
    assert result.exit_code == 0, result.output
    assert f"output columns (8 classes): {', '.join(FERPLUS_CLASS_NAMES)}" in result.output


def test_bench_tune_trains_its_trials_on_ferplus_and_the_tuned_recipe_keeps_the_label_set(
    ferplus_csv, tmp_path, monkeypatch
):
    from bench.tune import study as tune_mod
    from tests.test_tune import TUNE_TOML

    # trial 0 trains the recipe's own values; the second trial is made to beat it, so a recipe is written
    monkeypatch.setattr(
        tune_mod, "trial_score", lambda fit, result: 0.1 if fit.recipe.phases[0].learning_rate == 1e-3 else 0.9
    )
    recipe = tmp_path / "tiny_tune.toml"
    recipe.write_text(
        TUNE_TOML.replace(
            "[tune]", '[tune.boost_contempt]\npath = "class_weights.boost.contempt"\nlow = 1.0\nhigh = 3.0\n\n[tune]', 1
        )
    )
    args = [
        "tune",
        "--backbone",
        "baseline_cnn",
        "--head",
        "linear",
        "--recipe",
        str(recipe),
        "--data",
        str(ferplus_csv),
    ]
    args += ["--labels", "ferplus", "--set", "data.targets=crossentropy", "--trials", "2", "--study", "fp"]
    args += ["--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--pruner", "none", "-q"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    tuned = load_recipe("experiments/tuned/fp.toml")
    assert (tuned.data.labels, tuned.data.targets) == ("ferplus", "crossentropy")
    assert set(tuned.class_weights.boost) == {"disgust", "contempt"}
