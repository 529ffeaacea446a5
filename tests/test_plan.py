"""One resolved recipe describes a run: command-line options override its fields, names are checked once."""

import dataclasses

import pytest

from bench.errors import BenchError
from bench.plan import OPTION_FIELDS, backbone_names, check_runnable, expand, resolve_recipe
from bench.recipe_io import LATER_DEFAULTS, recipe_hash, to_toml
from bench.recipe_load import load_recipe


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('name = "r"\n[model]\nhead = "mlp"\n[data]\nbatch_size = 16\n[[phases]]\nepochs = 1\n')
    return str(path)


def test_options_override_set_which_overrides_the_file(recipe_file):
    recipe = resolve_recipe(recipe_file, ["model.head=linear", "data.batch_size=8"], head="hybrid", data="synthetic")
    assert recipe.model.head == "hybrid" and recipe.data.batch_size == 8 and recipe.data.source == "synthetic"
    assert resolve_recipe(recipe_file, ["model.head=linear"]).model.head == "linear"
    assert resolve_recipe(recipe_file).model.head == "mlp"  # options not given (None / False) change nothing
    assert resolve_recipe(recipe_file, deterministic=False).run.deterministic is False
    assert resolve_recipe(recipe_file, deterministic=True, weights="imagenet", seed=7).run.seed == 7
    assert resolve_recipe(recipe_file, seed=0).run.seed == 0  # a given 0 is not "not given"


def test_the_experiment_defaults_to_the_data_set_name(recipe_file, tmp_path):
    assert resolve_recipe(recipe_file, data="synthetic:300:1").run.experiment == "synthetic"
    assert resolve_recipe(recipe_file, data=str(tmp_path / "fer2013.csv.gz")).run.experiment == "fer2013"
    assert resolve_recipe(recipe_file, data="synthetic", experiment="mine").run.experiment == "mine"
    assert resolve_recipe(recipe_file).run.experiment == ""  # no data, no name yet


def test_every_option_names_a_recipe_field(recipe_file):
    with pytest.raises(TypeError, match="no recipe field for option 'colour'"):
        resolve_recipe(recipe_file, colour="red")
    raw = dataclasses.asdict(load_recipe(recipe_file))
    for path in OPTION_FIELDS.values():
        section, key = path.split(".")
        assert key in raw[section]


def test_expand_gives_one_checked_recipe_per_backbone_and_seed(recipe_file):
    base = resolve_recipe(recipe_file, data="synthetic")
    runs = expand(base, ["baseline_cnn", "mini_xception", "baseline_cnn"], [1, 2])
    assert [(r.model.backbone, r.run.seed) for r in runs] == [
        ("baseline_cnn", 1),
        ("baseline_cnn", 2),
        ("mini_xception", 1),
        ("mini_xception", 2),
    ]
    assert [r.model.backbone for r in expand(base, ["all"])] == backbone_names(["all"])
    own = expand(resolve_recipe(recipe_file, backbone="baseline_cnn", data="synthetic"))
    assert [(r.model.backbone, r.run.seed) for r in own] == [("baseline_cnn", base.run.seed)]


def test_a_run_needs_a_backbone_data_and_registered_names(recipe_file):
    with pytest.raises(BenchError, match="name at least one --backbone"):
        expand(resolve_recipe(recipe_file, data="synthetic"))
    with pytest.raises(BenchError, match="--data is required"):
        check_runnable(resolve_recipe(recipe_file, backbone="baseline_cnn"))
    with pytest.raises(BenchError, match="resnet5"):
        expand(resolve_recipe(recipe_file, data="synthetic"), ["resnet5"])
    with pytest.raises(BenchError, match="hybird"):
        check_runnable(resolve_recipe(recipe_file, backbone="baseline_cnn", head="hybird", data="synthetic"))


def test_the_run_fields_leave_the_hash_alone_and_round_trip(recipe_file, tmp_path):
    plain = load_recipe(recipe_file)
    described = resolve_recipe(recipe_file, backbone="resnet50", data="synthetic", experiment="x")
    assert recipe_hash(plain) == recipe_hash(described)
    path = tmp_path / "logged.toml"
    path.write_text(to_toml(described))
    assert load_recipe(str(path)) == described


def test_a_relative_votes_path_is_kept_absolute_for_a_resume_from_elsewhere(recipe_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = resolve_recipe(recipe_file, ['data.labels="ferplus"', 'data.votes="votes.csv"'], data="synthetic")
    assert recipe.data.votes == str(tmp_path.resolve() / "votes.csv")


PINNED_RECIPE = """
description = "pinned for the recipe-hash test"
[data]
batch_size = 16
[[phases]]
name = "train"
epochs = 2
"""


def test_label_sets_hash_apart_and_fer2013_hashes_as_before_label_sets_existed(tmp_path):
    """a2942013df42 is this recipe's hash as bench logged it before data.labels/targets/votes existed."""
    path = tmp_path / "pinned.toml"
    path.write_text(PINNED_RECIPE)
    fer2013 = load_recipe(str(path))
    ferplus = load_recipe(str(path), ['data.labels="ferplus"'])
    assert recipe_hash(fer2013) == "a2942013df42"
    assert recipe_hash(ferplus) != recipe_hash(fer2013)
    assert recipe_hash(load_recipe(str(path), ['data.labels="ferplus"', 'data.votes="v.csv"'])) == recipe_hash(ferplus)
    assert recipe_hash(load_recipe(str(path), ["model.batchnorm_momentum=0.99"])) != recipe_hash(fer2013)
    # the BatchNorm kernel is a speed setting (the fused one computes the same function): every value pools
    for kernel in ("keras", "fused", "auto"):
        assert recipe_hash(load_recipe(str(path), [f'model.batchnorm="{kernel}"'])) == recipe_hash(fer2013)
    for field, later in (("model.batchnorm_stats", "recomputed"), ("data.augment.resample", "once")):
        default = LATER_DEFAULTS[field]  # a nested path (data.augment.resample) as well as a two-level one
        assert recipe_hash(load_recipe(str(path), [f'{field}="{default}"'])) == recipe_hash(fer2013)
        assert recipe_hash(load_recipe(str(path), [f'{field}="{later}"'])) != recipe_hash(fer2013)
    separable = load_recipe(str(path), ["model.backbone_options.mini_xception.separable_l2=0.01"])
    assert recipe_hash(separable) != recipe_hash(fer2013)
    # the hybrid head's formulation computes the same function on the same variables: it pools
    keras_form = load_recipe(str(path), ['model.head_options.hybrid.formulation="keras"'])
    matmul_form = load_recipe(str(path), ['model.head_options.hybrid.formulation="matmul"'])
    assert recipe_hash(keras_form) == recipe_hash(matmul_form)


def test_speed_settings_leave_the_hash_alone_at_any_value(tmp_path):
    """They set how fast a run trains, not what it trains: runs differing only in them pool."""
    path = tmp_path / "pinned.toml"
    path.write_text(PINNED_RECIPE)
    faster = ["run.steps_per_execution=4", "run.threads_intra=2", "run.threads_inter=1"]
    assert recipe_hash(load_recipe(str(path), faster)) == recipe_hash(load_recipe(str(path))) == "a2942013df42"


def test_a_recipe_logged_before_the_run_fields_resumes_with_the_run_s_record(recipe_file):
    """Old runs logged the recipe file's head even when --head chose another; the run's params win."""
    resumed = resolve_recipe(recipe_file, backbone="baseline_cnn", head="linear", data="synthetic", experiment="e")
    assert (resumed.model.backbone, resumed.model.head, resumed.data.source, resumed.run.experiment) == (
        "baseline_cnn",
        "linear",
        "synthetic",
        "e",
    )
