import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.config import load_recipe
from bench.errors import BenchError
from bench.tune import apply_values, default_space, search_space, suggest, without_speed_settings

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


def test_format_trial_says_outcome_best_so_far_and_params():
    from bench.reports import format_trial

    status = {
        "number": 2,
        "state": "complete",
        "value": 0.31234,
        "params": {"lr": 0.0012345, "head": "mlp"},
        "failure": None,
        "last_step": 1,
        "best_value": 0.4,
        "best_number": 0,
        "done": 3,
        "total": 10,
    }
    assert format_trial(status) == "trial 2 [3/10] val macro-F1 0.3123 | best 0.4000 (trial 0) | lr=0.00123 head=mlp"
    pruned = format_trial({**status, "state": "pruned", "value": None})
    assert "pruned after epoch 2" in pruned
    failed = format_trial({**status, "state": "fail", "failure": "TrainingDiverged: NaN", "best_value": None})
    assert "fail: TrainingDiverged: NaN | no trial complete yet" in failed


def test_default_space_covers_rates_weights_smoothing_and_dropout():
    recipe = load_recipe("smoke")
    space = {p.name: p for p in search_space(recipe, "hybrid")}
    assert {f"lr_{ph.name}" for ph in recipe.phases} <= set(space)
    assert space["lr_frozen"].log and space["lr_frozen"].low == pytest.approx(1e-4)
    assert (space["class_weight_power"].low, space["class_weight_power"].high) == (0.0, 1.5)
    assert space["boost_disgust"].path == "class_weights.boost.disgust"
    assert space["head_dropout"].path == "model.head_options.hybrid.dropout"
    assert set(default_space(recipe, "mlp")) == set(space)


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


def _trials(storage, study):
    return optuna.load_study(study_name=study, storage=storage).trials


def _mlflow_runs(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path(tmp_path / 'mlruns' / 'mlflow.db').resolve()}")
    exp = mlflow.get_experiment_by_name("tune")
    return mlflow.search_runs([exp.experiment_id], output_format="list")


def test_study_nests_trials_writes_a_runnable_recipe_and_resumes(recipe_path, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    def args(trials):
        return [
            "tune",
            "--backbone",
            "baseline_cnn",
            "--head",
            "linear",
            "--recipe",
            recipe_path,
            "--data",
            "synthetic:300:1",
            "--trials",
            str(trials),
            "--storage",
            storage,
            "--study",
            "s1",
            "--experiment",
            "tune",
            "--pruner",
            "none",
        ]

    result = CliRunner().invoke(cli, args(2), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "best trial" in result.output and "experiments/tuned/s1.toml" in result.output
    assert len(_trials(storage, "s1")) == 2
    runs = _mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("bench.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].info.status == "FINISHED" and "best_val_macro_f1" in parents[0].data.metrics
    tuned = load_recipe("experiments/tuned/s1.toml")
    assert tuned.name == "s1"
    best = optuna.load_study(study_name="s1", storage=storage).best_params
    assert tuned.phases[0].learning_rate == pytest.approx(best["lr"])
    # Resume: asking for 3 trials in the same study runs exactly one more.
    again = CliRunner().invoke(cli, args(3), catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert len(_trials(storage, "s1")) == 3
    run = CliRunner().invoke(
        cli,
        [
            "run",
            "--recipe",
            "experiments/tuned/s1.toml",
            "--backbone",
            "baseline_cnn",
            "--head",
            "linear",
            "--data",
            "synthetic:300:1",
            "--no-save-model",
        ],
    )
    assert run.exit_code == 0, run.output


def test_failed_trials_do_not_stop_the_study_and_pruning_prunes(recipe_path, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # Learning rates of 1e5-1e6 with SGD diverge: those trials fail (NaN), the study goes on.
    args = [
        "tune",
        "--backbone",
        "baseline_cnn",
        "--head",
        "linear",
        "--recipe",
        recipe_path,
        "--data",
        "synthetic:300:1",
        "--trials",
        "2",
        "--storage",
        storage,
        "--study",
        "bad",
        "--experiment",
        "tune",
        "--sampler",
        "random",
        "--set",
        'phases.0.optimizer="sgd"',
        "--set",
        "phases.0.epochs=4",
        "--set",
        "tune.lr.low=1e5",
        "--set",
        "tune.lr.high=1e6",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "no trial completed" in result.output
    trials = _trials(storage, "bad")
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert "TrainingDiverged" in trials[0].user_attrs["failure"]
    # A pruner that always prunes after the first report.
    from bench import tune as tune_mod

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    original = tune_mod._pruner
    tune_mod._pruner = lambda name: Always()
    try:
        result = CliRunner().invoke(
            cli,
            [
                "tune",
                "--backbone",
                "baseline_cnn",
                "--head",
                "linear",
                "--recipe",
                recipe_path,
                "--data",
                "synthetic:300:1",
                "--trials",
                "2",
                "--storage",
                storage,
                "--study",
                "pruned",
                "--experiment",
                "tune",
            ],
        )
    finally:
        tune_mod._pruner = original
    states = {t.state for t in _trials(storage, "pruned")}
    assert states == {optuna.trial.TrialState.PRUNED}
    assert result.exit_code == 2 and "2 pruned" in result.output


def _two_workers_complete_the_study(recipe_path, tmp_path, storage, study):
    """Start the same `bench tune` twice on one storage; every trial is run once, with one MLflow run."""
    from bench import tracking

    tracking.ensure_experiment("tune", tracking.connect(None))  # create the local store before the workers race
    CliRunner().invoke(cli, ["data", "check", "--data", "synthetic:300:1"])  # warm the synthetic cache once
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "tune",
        "--backbone",
        "baseline_cnn",
        "--head",
        "linear",
        "--recipe",
        recipe_path,
        "--data",
        "synthetic:300:1",
        "--trials",
        "4",
        "--storage",
        storage,
        "--study",
        study,
        "--experiment",
        "tune",
        "--pruner",
        "none",
    ]
    workers = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [w.communicate(timeout=900)[0].decode() for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    trials = _trials(storage, study)
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 4 <= len(finished) <= 5  # two workers may both start the last trial
    assert len({t.number for t in trials}) == len(trials)
    children = [r for r in _mlflow_runs(tmp_path) if "optuna.trial" in r.data.tags]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == sorted(t.number for t in trials)


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(recipe_path, tmp_path):
    _two_workers_complete_the_study(recipe_path, tmp_path, f"sqlite:///{tmp_path / 'shared.db'}", "shared")


def test_ctrl_c_marks_the_parent_killed_and_a_rerun_continues(recipe_path, tmp_path, monkeypatch):
    from bench import tune as tune_mod

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [
        "tune",
        "--backbone",
        "baseline_cnn",
        "--head",
        "linear",
        "--recipe",
        recipe_path,
        "--data",
        "synthetic:300:1",
        "--trials",
        "3",
        "--storage",
        storage,
        "--study",
        "ctrlc",
        "--experiment",
        "tune",
        "--pruner",
        "none",
    ]
    original = tune_mod._objective

    def interrupting(*a, **k):
        objective = original(*a, **k)

        def wrapped(trial):
            if trial.number == 1:
                raise KeyboardInterrupt
            return objective(trial)

        return wrapped

    monkeypatch.setattr(tune_mod, "_objective", interrupting)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 130 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) <= 6, result.output  # 2 epoch lines, a trial line, the stop line; no optuna traceback
    (trial_line,) = [line for line in lines if line.startswith("trial ")]
    assert trial_line.startswith("trial 0 [1/3] val macro-F1 ") and "best " in trial_line and "lr=" in trial_line
    parent = [r for r in _mlflow_runs(tmp_path) if r.data.tags.get("bench.kind") == "study"][0]
    assert lines[-1].startswith(
        f"interrupted: study ctrlc keeps its 1 finished trials; its parent run {parent.info.run_id} is KILLED"
    )
    assert parent.info.status == "KILLED"
    states = [t.state for t in _trials(storage, "ctrlc")]
    assert states[0] == optuna.trial.TrialState.COMPLETE and len(states) == 2
    monkeypatch.setattr(tune_mod, "_objective", original)
    command = shlex.split(lines[-1].split("`")[1])  # the printed command, run as printed
    assert command[:2] == ["bench", "tune"] and "--quiet" not in command
    result = CliRunner().invoke(cli, [*command[1:], "--final"])
    assert result.exit_code == 0, result.output
    trials = _trials(storage, "ctrlc")
    # the interrupted trial does not count: the rerun completes the 3 trials asked for
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 3 and len(trials) == 4
    runs = _mlflow_runs(tmp_path)
    parent = [r for r in runs if r.data.tags.get("bench.kind") == "study"][0]
    assert parent.info.status == "FINISHED" and "failure_reason" not in parent.data.tags  # not "interrupted"
    final = [r for r in runs if r.data.params.get("recipe") == "ctrlc"]
    assert len(final) == 1 and "test_macro_f1" in final[0].data.metrics  # --final: a normal run with test metrics


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1, started as the postgres user (it refuses root);
    skips cleanly where no server can be started."""
    import glob
    import os
    import shutil

    pytest.importorskip("psycopg")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or shutil.which("su") is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench-pg-", dir="/tmp"))  # pytest's own tmp root is private to root
    os.chmod(folder, 0o777)
    port = 54329
    start = (
        f"{bins[-1]}/initdb -D {folder}/data -A trust -U postgres >/dev/null && {bins[-1]}/pg_ctl -D "
        f"{folder}/data -o '-p {port} -k {folder} -c listen_addresses=127.0.0.1' -l {folder}/log -w start"
    )
    as_postgres = ["su", "postgres", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    started = subprocess.run([*as_postgres, start], capture_output=True, text=True, timeout=120, cwd=folder)
    if started.returncode != 0:
        pytest.skip(f"PostgreSQL could not start: {started.stderr.strip()[:200]}")
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run(
        [*as_postgres, f"{bins[-1]}/pg_ctl -D {folder}/data stop -m fast"], capture_output=True, timeout=60, cwd=folder
    )
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(recipe_path, tmp_path, postgres_url):
    _two_workers_complete_the_study(recipe_path, tmp_path, postgres_url, "pg")


@pytest.mark.parametrize("stats", ["moving", "recomputed"])
def test_a_trial_is_scored_on_the_model_it_ships(stats):
    """moving: the best epoch's validation macro-F1 as it trained; recomputed: the validation macro-F1 of
    the final model (restored epoch, recomputed statistics), which the history never saw."""
    from dataclasses import replace
    from types import SimpleNamespace

    import keras
    import numpy as np

    from bench.tune import trial_score

    recipe = load_recipe("smoke")
    recipe = replace(recipe, model=replace(recipe.model, batchnorm_stats=stats))
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(7, "softmax")])
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.zeros_like(kernel), np.eye(7)[2] * 5])  # always class 2
    y_val = np.array([2, 2, 2, 0])  # macro-F1 of always-2: classes {0, 2} -> (0 + 2*3/7) / 2
    fit = SimpleNamespace(recipe=recipe, model=model, splits=SimpleNamespace(x_val=np.zeros((4, 4, 4)), y_val=y_val))
    result = SimpleNamespace(history={"val_macro_f1": [0.2, 0.9, 0.5]})
    expected = 0.9 if stats == "moving" else (6 / 7) / 2
    assert trial_score(fit, result) == pytest.approx(expected)
