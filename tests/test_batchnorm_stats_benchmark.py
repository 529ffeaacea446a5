"""benchmarks/investigations/batchnorm_stats.py: three sets of BatchNorm statistics for a saved run, weights
unchanged."""

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def script():
    return load_benchmark("investigations/batchnorm_stats")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A saved baseline_cnn + linear model (untrained) and an augmenting recipe, as a run's artifacts."""
    from bench.recipe_io import to_toml
    from bench.recipe_load import load_recipe
    from bench.train.build import build_for_recipe

    folder = tmp_path_factory.mktemp("artifacts")
    recipe = load_recipe("smoke", ["model.backbone=baseline_cnn", "model.head=linear", "data.max_train=40"])
    model, _, _ = build_for_recipe(recipe)
    model.save(folder / "model.keras")
    (folder / "recipe.toml").write_text(to_toml(recipe))
    return folder


def test_each_setting_scores_the_saved_weights_with_its_statistics(script, run_dir, tmp_path, capsys):
    out = tmp_path / "figures.json"
    script.main(["--data", "synthetic:200:1", "--json", str(out), str(run_dir)])
    import json

    rows = json.loads(out.read_text())
    assert [row["setting"] for row in rows] == list(script.SETTINGS)
    moving, recomputed, augmented = rows
    assert moving["layers"] == 0 and recomputed["layers"] == augmented["layers"] == 4  # baseline_cnn's BatchNorms
    assert all(0 <= row["test_accuracy"] <= 1 and 0 <= row["val_macro_f1"] <= 1 for row in rows)
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_a_folder_without_a_model_is_refused_in_one_line(script, tmp_path, capsys):
    with pytest.raises(SystemExit):
        script.main(["--data", "synthetic:200:1", str(tmp_path)])
    assert "no model.keras; pass a bench run's artifacts folder" in capsys.readouterr().err
