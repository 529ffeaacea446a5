import tomllib

import pytest

from bench.config import Recipe
from bench.errors import BenchError
from bench.recipe_io import flatten, to_dict, to_toml
from bench.recipe_load import apply_override, from_dict, load_recipe


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper", "arriaga", "gpu"])
def test_shipped_recipes_load_and_round_trip_through_toml(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert from_dict(Recipe, tomllib.loads(to_toml(recipe))) == recipe


def test_paper_recipe_is_the_seed_recipe():
    r = load_recipe("paper")
    assert (r.data.image_size, r.data.batch_size, r.model.weights) == (224, 32, "imagenet")
    assert [p.epochs for p in r.phases] == [30, 15, 15, 20, 20]
    assert [p.band for p in r.phases[1:4]] == [(0.0, 0.09), (0.09, 0.20), (0.20, 0.43)]
    assert [p.learning_rate for p in r.phases[1:]] == [1e-5, 5e-6, 1e-6, 1e-7]
    assert r.phases[0].optimizer == "adamw" and r.phases[0].weight_decay == 1e-3
    assert r.phases[-1].train == "head" and r.phases[-1].optimizer == "adam"
    assert r.class_weights.scheme == "balanced" and r.class_weights.boost == {"disgust": 3.0}
    assert all(p.reduce_on_plateau for p in r.phases[1:])


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"data": {"batch_sise": 3}}, "unknown recipe key 'data.batch_sise'"),
        ({"data": {"batch_size": "32"}}, "'data.batch_size': received '32'; expected an integer"),
        ({"data": {"batch_size": 0}}, "expected a value in [1, 4096]"),
        ({"model": {"precision": "fp8"}}, "expected one of auto, float32"),
        ({"data": {"augment": {"horizontal_flip": 1}}}, "expected true or false"),
        ({"phases": [{"schedule": "cosine", "reduce_on_plateau": True}]}, 'needs schedule = "constant"'),
        ({"phases": [{"band": [0.5, 0.2]}]}, "low < high"),
        ({"data": {"targets": "crossentropy"}}, 'need data.labels = "ferplus"'),
        ({"data": {"votes": "v.csv"}}, "add --labels ferplus"),
        ({"data": {"labels": "affectnet"}}, "expected one of fer2013, ferplus"),
        ({"phases": []}, "at least one"),
        ({"model": {"head_options": {"hybrid": 3}}}, "must be a table"),
        ({"run": {"steps_per_execution": 0}}, "'run.steps_per_execution': received 0"),
        ({"run": {"steps_per_epoch": 10, "steps_per_execution": 4}}, "set run.steps_per_epoch = 12 or"),
        ({"run": {"threads_intra": -1}}, "'run.threads_intra': received -1"),
        ({"eval": {"tta": "crops"}}, 'eval.tta = "crops" needs data.augment.crop_padding > 0'),
        ({"eval": {"tta": "ten"}}, "'eval.tta': received 'ten'; expected one of none, flip, crops"),
    ],
)
def test_bad_recipes_raise_one_line_errors_naming_key_and_value(raw, message):
    with pytest.raises(BenchError) as err:
        from_dict(Recipe, raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_overrides_apply_to_nested_keys_phases_and_wildcards():
    raw = to_dict(load_recipe("smoke"))
    apply_override(raw, "data.batch_size=8")
    apply_override(raw, "phases.1.learning_rate=3e-4")
    apply_override(raw, "phases.*.epochs=2")
    apply_override(raw, "model.head_options.hybrid.dropout=0.1")
    apply_override(raw, "data.augment.brightness=[0.9, 1.1]")
    recipe = from_dict(Recipe, raw)
    assert recipe.data.batch_size == 8
    assert recipe.phases[1].learning_rate == 3e-4
    assert {p.epochs for p in recipe.phases} == {2}
    assert recipe.model.head_options["hybrid"]["dropout"] == 0.1
    assert recipe.data.augment.brightness == (0.9, 1.1)


def test_overrides_are_validated_like_the_file():
    with pytest.raises(BenchError, match="'data.batch_size': received 'big'"):
        load_recipe("smoke", ["data.batch_size=big"])
    with pytest.raises(BenchError, match="expected key.sub=value"):
        load_recipe("smoke", ["data.batch_size"])
    with pytest.raises(BenchError, match="not a phase index"):
        load_recipe("smoke", ["phases.9.epochs=1"])


def test_recipe_by_path_and_unknown_name(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[run]\nseed = 7\n[[phases]]\nepochs = 2\n")
    recipe = load_recipe(str(path))
    assert recipe.name == "mine" and recipe.run.seed == 7 and recipe.phases[0].epochs == 2
    with pytest.raises(BenchError, match="unknown recipe 'nope'.*known: .*cpu"):
        load_recipe("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(BenchError, match="not valid TOML"):
        load_recipe(str(bad))


def test_flatten_gives_dotted_keys():
    flat = flatten(to_dict(load_recipe("smoke")))
    assert flat["data.batch_size"] == 32
    assert flat["phases.1.band"] == [0.0, 0.09]
    assert flat["model.head_options.hybrid.projection_dim"] == 32


def test_split_assignment_strips_and_names_the_option_in_its_error():
    from bench.recipe_load import split_assignment

    assert split_assignment(" head = linear ", "--filter", "--filter head=hybrid") == ("head", "linear")
    assert split_assignment("a=b=c", "--filter", "x") == ("a", "b=c")
    with pytest.raises(BenchError, match="--filter 'head': expected KEY=VALUE, e.g. --filter head=hybrid"):
        split_assignment("head", "--filter", "--filter head=hybrid")


def test_a_field_s_role_is_declared_on_the_field():
    """What the recipe hash, the leaderboard's variant notes and tune read generically comes from the
    fields themselves: their role and whether they were added after runs were logged."""
    from bench.config import SPEED, SUBJECT, MixConfig, PhaseConfig, fields_with_role, later_defaults

    assert set(fields_with_role(SUBJECT)) == {"model.backbone", "data.source", "run.experiment", "data.votes"}
    assert set(fields_with_role(SPEED)) == {
        "run.steps_per_execution",
        "run.threads_intra",
        "run.threads_inter",
        "model.batchnorm",
        "run.devices",
    }
    later = later_defaults()
    assert later["data.labels"] == "fer2013" and later["model.backbone_options"] == {}
    assert later["data.mix"] == {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "prob": 1.0, "switch_prob": 0.5}
    assert later["eval"] == {"tta": "none", "calibrate": False} and "data.batch_size" not in later
    assert later_defaults(PhaseConfig) == {"ema_decay": 0.0} and later_defaults(MixConfig) == {}
