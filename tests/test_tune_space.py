"""The search space and the recipes it makes (bench.tune_space): no study, no storage, no training."""

import dataclasses

import numpy as np
import optuna
import pytest

from bench import CLASS_NAMES
from bench.config import DataConfig, PhaseConfig
from bench.data.weights import class_weights
from bench.errors import BenchError
from bench.recipe_load import load_recipe
from bench.tune_space import (
    apply_values,
    baseline_params,
    check_study_name,
    default_space,
    recipe_values,
    search_space,
    suggest,
    with_speed_settings,
    within,
    without_speed_settings,
    write_new,
)

TUNE_TOML = """
description = "one short phase on tiny data (tune tests)"
[data]
max_train = 64
max_eval = 48
[data.augment]
enabled = false
[[phases]]
name = "all"
epochs = 2
train = "all"
optimizer = "adam"
learning_rate = 1e-3
[tune]
use_defaults = false
[tune.lr]
path = "phases.0.learning_rate"
low = 1e-4
high = 1e-2
log = true
[tune.boost_disgust]
path = "class_weights.boost.disgust"
low = 1.0
high = 5.0
[tune.smoothing]
path = "phases.*.label_smoothing"
low = 0.0
high = 0.2
enabled = false
"""


@pytest.fixture
def recipe_path(tmp_path):
    path = tmp_path / "tiny_tune.toml"
    path.write_text(TUNE_TOML)
    return str(path)


def test_default_space_covers_rates_weights_smoothing_and_dropout():
    recipe = load_recipe("smoke")
    space = {p.name: p for p in search_space(recipe, "hybrid")}
    assert {f"lr_{ph.name}" for ph in recipe.phases} <= set(space)
    assert {f"weight_decay_{ph.name}" for ph in recipe.phases} <= set(space)
    assert space["lr_frozen"].log and space["lr_frozen"].low == pytest.approx(1e-3 / 3)
    assert space["boost_disgust"].path == "class_weights.boost.disgust"
    assert space["head_dropout"].path == "model.head_options.hybrid.dropout"
    assert set(default_space(recipe, "mlp")) == set(space)


def test_default_space_is_centred_on_the_cpu_recipes_evidence():
    """Class-weight powers above 1 with boosts up to 5 and learning rates x10 wrecked every trial of the
    first FER2013 study (val macro-F1 0.004-0.064): the default space stays near what the ablation found."""
    recipe = load_recipe("cpu")
    space = {p.name: p for p in search_space(recipe, "hybrid")}
    ranges = {name: (p.low, p.high) for name, p in space.items() if p.choices is None}
    assert ranges["lr_train"] == (pytest.approx(1e-3 / 3), pytest.approx(3e-3)) and space["lr_train"].log
    assert ranges["weight_decay_train"] == (1e-5, 1e-2) and space["weight_decay_train"].log
    assert space["weight_decay_train"].path == "phases.0.weight_decay"
    assert ranges["class_weight_power"] == (0.0, 0.6)
    assert ranges["boost_disgust"] == ranges["boost_fear"] == (1.0, 2.0)
    assert ranges["label_smoothing"] == (0.0, 0.15) and ranges["head_dropout"] == (0.1, 0.5)
    assert space["optimizer"].choices == ("adamw", "sgd_nesterov") and space["optimizer"].path == "phases.*.optimizer"
    assert space["augment"].choices == (False, True) and space["augment"].path == "data.augment.enabled"
    # mixup and weight EMA are searched where this version of the recipe has those fields
    has_mix = "mix" in {f.name for f in dataclasses.fields(DataConfig)}
    has_ema = "ema_decay" in {f.name for f in dataclasses.fields(PhaseConfig)}
    assert ("mixup_alpha" in space) == has_mix and ("ema_decay" in space) == has_ema
    if has_mix:
        assert ranges["mixup_alpha"] == (0.0, 0.4) and space["mixup_alpha"].path == "data.mix.mixup_alpha"
    if has_ema:
        assert space["ema_decay"].choices == (0.0, 0.99, 0.998)
    # a head without a dropout option (known once the heads are imported) is not given one
    assert "head_dropout" not in default_space(recipe, "conv_gap", head_options={"num_classes": 7})


def test_the_recipes_own_values_as_the_space_holds_them():
    cpu = load_recipe("cpu")
    space = search_space(cpu, "hybrid")
    own = recipe_values(cpu, space, head_options={"dropout": 0.5})
    assert own["class_weight_power"] == 0.0  # scheme none: no weights, power 0
    assert own["boost_disgust"] == own["boost_fear"] == 1.0  # no boost
    assert own["lr_train"] == 1e-3 and own["weight_decay_train"] == 1e-3 and own["optimizer"] == "adamw"
    assert own["head_dropout"] == 0.5 and own["augment"] is True  # the head factory's default dropout
    assert own["ema_decay"] == 0.998
    baseline = baseline_params(space, own)
    assert baseline == own  # the cpu recipe sits inside its default space
    # the trial's recipe is the recipe: power 0 with scheme "power" weighs every class 1
    recipe = apply_values(cpu, space, baseline)
    assert recipe.class_weights.scheme == "power" and recipe.class_weights.power == 0.0
    assert recipe.phases == cpu.phases and recipe.data.augment == cpu.data.augment
    weights = class_weights(np.array([0, 0, 0, 1, 2, 2]), "power", 0.0, {}, class_names=CLASS_NAMES)
    assert np.allclose(weights, 1.0)
    smoke = load_recipe("smoke")
    space = search_space(smoke, "hybrid")
    clipped = {p.name: within(p, v) for p, v in zip(space, recipe_values(smoke, space).values(), strict=True)}
    assert clipped["class_weight_power"] == 0.6  # balanced = power 1, clipped into 0-0.6
    assert clipped["boost_disgust"] == 2.0 and clipped["weight_decay_unfreeze_top"] == 1e-5  # 3 and 0, clipped
    assert clipped["optimizer"] == "adamw"  # adamw is phase 0's; a value outside the choices takes the first


def test_set_narrows_the_default_space():
    recipe = load_recipe("cpu", ["tune.boost_fear.high=2.0", "tune.head_dropout.enabled=false"])
    space = {p.name: p for p in search_space(recipe, "hybrid")}
    assert space["boost_fear"].high == 2.0 and space["boost_fear"].low == 1.0
    assert "head_dropout" not in space and "lr_train" in space


def test_a_tuned_recipe_leaves_the_speed_settings_at_their_defaults(recipe_path):
    speed = ["run.steps_per_execution=2", "run.threads_intra=2", "run.threads_inter=1", 'model.batchnorm="auto"']
    recipe = load_recipe(recipe_path, ["run.seed=7", *speed])
    tuned = without_speed_settings(recipe)
    assert (tuned.run.steps_per_execution, tuned.run.threads_intra, tuned.run.threads_inter) == (1, 0, 0)
    assert tuned.run.seed == 7 and tuned.phases == recipe.phases and tuned.model == recipe.model
    assert tuned.model.batchnorm == "auto"  # the recipe's kernel choice, not the tuning machine's


def test_the_final_run_takes_back_this_machine_s_speed_settings(recipe_path):
    machine = load_recipe(recipe_path, ["run.devices=2", "run.steps_per_execution=4", "run.seed=3"])
    tuned = without_speed_settings(load_recipe(recipe_path, ["run.devices=2", "run.seed=7"]))
    assert tuned.run.devices == 0  # written for any machine
    final = with_speed_settings(tuned, machine.run)
    assert (final.run.devices, final.run.steps_per_execution, final.run.seed) == (2, 4, 7)  # not the seed
    assert final.phases == tuned.phases and final.model == tuned.model


def test_space_respects_the_recipe_and_set_narrowing(recipe_path):
    recipe = load_recipe(recipe_path, ["tune.lr.high=2e-3"])
    space = search_space(recipe, "linear")
    assert [p.name for p in space] == ["lr", "boost_disgust"]  # disabled entries drop out
    assert space[0].high == 2e-3
    trial = optuna.trial.FixedTrial({"lr": 5e-4, "boost_disgust": 2.5})
    tuned = apply_values(recipe, space, suggest(trial, space))
    assert tuned.phases[0].learning_rate == 5e-4 and tuned.class_weights.boost == {"disgust": 2.5}
    assert tuned.phases[0].label_smoothing == 0.0  # fixed values stay fixed
    with pytest.raises(BenchError, match="low <= high"):
        search_space(load_recipe(recipe_path, ["tune.lr.low=1.0"]), "linear")


def test_bench_tune_still_exports_the_space():
    """Callers that import the space from bench.tune (tests, scripts) keep working: the same objects."""
    import bench.tune
    import bench.tune_space

    for name in ("Param", "default_space", "has_field", "search_space", "suggest", "apply_values", "recipe_values"):
        assert getattr(bench.tune, name) is getattr(bench.tune_space, name)
    for name in ("within", "without_speed_settings", "check_study_name", "TUNED_DIR"):
        assert getattr(bench.tune, name) is getattr(bench.tune_space, name)


@pytest.mark.parametrize("name", ["/some/path", "../up", "a/b", "a\\b", "..", ".hidden", " padded "])
def test_a_study_name_is_a_name_not_a_path(name):
    with pytest.raises(BenchError, match="a study name is a name, not a path"):
        check_study_name(name)
    check_study_name("baseline_cnn-hybrid-cpu.v2")


def test_a_tuned_recipe_never_overwrites_another(tmp_path):
    paths = [write_new(tmp_path / "tuned", "study", f"n = {n}\n") for n in range(3)]
    assert [p.name for p in paths] == ["study.toml", "study-2.toml", "study-3.toml"]
    assert paths[0].read_text() == "n = 0\n"


def test_the_space_does_not_import_optuna():
    """bench.tune stays the only module importing optuna (STYLE.md); the CLI checks a space before it loads."""
    import subprocess
    import sys

    code = "import sys, bench.tune_space; assert 'optuna' not in sys.modules, 'optuna imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
