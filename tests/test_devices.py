"""bench.devices: which device counts a backend and a batch accept, how many devices a run resolves to, and the
``--devices`` option's one-line errors. Cheap and backend-neutral (the backend is pinned per test); the
training on two JAX devices is tests/test_data_parallel.py's."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bench import devices as dv
from bench.cli import cli
from bench.config import SPEED, Recipe, fields_with_role
from bench.errors import BenchError
from bench.plan import resolve_recipe
from bench.recipe_io import recipe_hash


def recipe(devices: int, batch_size: int = 32) -> Recipe:
    return resolve_recipe("smoke", [f"run.devices={devices}", f"data.batch_size={batch_size}"], data="synthetic")


@pytest.fixture
def backend(monkeypatch):
    """Pin the backend bench.devices sees: ``backend("tensorflow")``."""
    return lambda name: monkeypatch.setattr(dv, "backend_name", lambda: name)


@pytest.mark.parametrize("name", ["tensorflow", "torch"])
def test_several_devices_outside_jax_is_one_error_naming_jax(backend, name):
    backend(name)
    with pytest.raises(BenchError, match=r"under JAX only \(KERAS_BACKEND=jax.*use --devices 1"):
        dv.check_devices(recipe(2))
    for one in (0, 1):  # all local devices, or one: one device there, no error
        dv.check_devices(recipe(one))


def test_a_batch_the_devices_do_not_split_is_one_error_with_both_fixes(backend):
    backend("jax")
    with pytest.raises(BenchError, match=r"batch_size = 32 does not split over 3 devices.*--devices 2.*e\.g\. 33"):
        dv.check_devices(recipe(3))
    dv.check_devices(recipe(4))
    dv.check_devices(recipe(3, batch_size=48))


def test_resolve_devices_zero_is_all_and_more_than_there_is_an_error():
    assert dv.resolve_devices(0, 4) == 4
    assert dv.resolve_devices(2, 4) == 2
    with pytest.raises(BenchError, match=r"run.devices = 3, but this machine has 2 local device\(s\).*--devices 2"):
        dv.resolve_devices(3, 2)


def test_use_devices_outside_jax_trains_on_one(backend):
    backend("tensorflow")
    assert dv.use_devices(recipe(0)) == 1 and dv.use_devices(recipe(1)) == 1
    assert dv.device_count() == 1


@pytest.mark.parametrize(("batch", "devices", "expected"), [(256, 1, 256), (256, 2, 256), (256, 3, 258), (5, 4, 8)])
def test_split_batch_size_rounds_up_to_a_multiple(batch, devices, expected):
    assert dv.split_batch_size(batch, devices) == expected


def test_devices_is_a_speed_setting_left_out_of_the_hash():
    """Same global batch, same training up to reduction order: runs on 1 and 2 devices pool on a leaderboard."""
    assert "run.devices" in fields_with_role(SPEED)
    assert recipe_hash(recipe(1)) == recipe_hash(recipe(2)) == recipe_hash(recipe(0))
    assert recipe_hash(recipe(2)) != recipe_hash(recipe(2, batch_size=64))  # a changed global batch is a new recipe


def test_run_with_several_devices_under_tensorflow_fails_in_one_line_before_training(backend, tmp_path):
    backend("tensorflow")
    args = ["run", "--recipe", "smoke", "--backbone", "baseline_cnn", "--data", "synthetic", "--devices", "2"]
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(errors) == 1 and "under JAX only" in errors[0] and "--devices 1" in errors[0]
    assert "== baseline_cnn" not in result.output  # refused before any run started


@pytest.mark.parametrize("command", ["run", "tune"])
def test_run_and_tune_help_name_devices(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and "--devices" in result.output and "data-parallel" in result.output


TUNE = ["tune", "--recipe", "smoke", "--backbone", "baseline_cnn", "--data", "synthetic", "--trials", "1"]


def test_tune_with_several_devices_under_tensorflow_fails_in_one_line_before_training(backend, tmp_path, monkeypatch):
    backend("tensorflow")
    monkeypatch.setattr("bench.cli.tune_cmd.load_tensorflow", _not_reached)
    args = [*TUNE, "--devices", "2", "--storage", f"sqlite:///{tmp_path}/o.db"]
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(errors) == 1 and "under JAX only" in errors[0] and "--devices 1" in errors[0]


def _not_reached(*args, **kwargs):
    raise AssertionError("reached past the device check")


def test_tune_devices_reaches_every_trial_and_the_final_run(backend, tmp_path, monkeypatch):
    """``bench tune --devices 2`` sets run.devices of the recipe the study trains, and of the --final run
    (whose tuned recipe was written without it). The study and the run are stand-ins: no training."""
    from dataclasses import replace

    import bench.data
    import bench.reports
    import bench.runner
    import bench.tune

    backend("jax")
    seen = {}

    def study(req, data):
        seen["study"] = req.recipe.run.devices
        tuned = replace(req.recipe, run=replace(req.recipe.run, devices=0))  # as written: no speed settings
        return {
            "study": req.study,
            "n_complete": 1,
            "n_pruned": 0,
            "n_failed": 0,
            "baseline_value": 0.5,
            "baseline_trial": 0,
            "baseline_failed": False,
            "beaten": True,
            "best_trial": 1,
            "best_value": 0.6,
            "best_params": {},
            "recipe_path": "tuned.toml",
            "tuned": tuned,
        }

    def final_run(req, data):
        seen["final"] = req.recipe.run.devices
        return "summary"

    monkeypatch.setattr("bench.cli.tune_cmd.load_tensorflow", lambda: None)
    monkeypatch.setattr(bench.data, "load_for_recipe", lambda recipe: "data")
    monkeypatch.setattr(bench.tune, "run_study", study)
    monkeypatch.setattr(bench.runner, "run_one", final_run)
    monkeypatch.setattr(bench.reports, "summary_line", str)
    args = [*TUNE, "--devices", "2", "--final", "-q", "--storage", f"sqlite:///{tmp_path}/o.db"]
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert result.exit_code == 0, result.output
    assert seen == {"study": 2, "final": 2}
