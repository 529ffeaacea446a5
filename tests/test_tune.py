import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.recipe_load import load_recipe
from tests.test_tune_space import TUNE_TOML  # the tiny recipe with a [tune] space; test_ferplus_run reads it here


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


def _trials(storage, study):
    return optuna.load_study(study_name=study, storage=storage).trials


def _mlflow_runs(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path(tmp_path / 'mlruns' / 'mlflow.db').resolve()}")
    exp = mlflow.get_experiment_by_name("tune")
    return mlflow.search_runs([exp.experiment_id], output_format="list")


@pytest.fixture
def baseline_trails(monkeypatch):
    """Every trial but the baseline (the tiny recipe's own learning rate, 1e-3) scores higher than it, so
    whether a tuned recipe is written does not hang on training noise."""
    from bench.tune import study as tune_mod

    monkeypatch.setattr(
        tune_mod, "trial_score", lambda fit, result: 0.1 if fit.recipe.phases[0].learning_rate == 1e-3 else 0.9
    )


def test_study_nests_trials_writes_a_runnable_recipe_and_resumes(recipe_path, tmp_path, baseline_trails):
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
    assert "best trial 1: val macro-F1 0.9000; the recipe's own 0.1000 (trial 0)" in result.output
    assert "tuned recipe written to experiments/tuned/s1.toml" in result.output
    trials = _trials(storage, "s1")
    assert len(trials) == 2 and trials[0].user_attrs["baseline"] is True  # the recipe's own values come first
    assert trials[0].user_attrs["baseline_params"] == trials[0].params
    assert trials[0].params == {"lr": 1e-3, "boost_disgust": 1.0} and "(the recipe's own values)" in result.output
    runs = _mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("bench.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].info.status == "FINISHED" and "best_val_macro_f1" in parents[0].data.metrics
    tuned = load_recipe("experiments/tuned/s1.toml")
    assert tuned.name == "s1"
    best = optuna.load_study(study_name="s1", storage=storage).best_params
    assert tuned.phases[0].learning_rate == pytest.approx(best["lr"])
    # Resume: asking for 3 trials in the same study runs exactly one more, not the baseline again, and
    # writes a second file beside the first instead of over it.
    written = Path("experiments/tuned/s1.toml").read_text()
    again = CliRunner().invoke(cli, args(3), catch_exceptions=False)
    assert again.exit_code == 0, again.output
    trials = _trials(storage, "s1")
    assert len(trials) == 3 and sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    assert "tuned recipe written to experiments/tuned/s1-2.toml" in again.output
    assert Path("experiments/tuned/s1.toml").read_text() == written
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
        "phases.0.learning_rate=1e5",  # the baseline trains the recipe's own rate: it diverges too
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
    from bench.tune import study as tune_mod

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    original = tune_mod._pruner
    tune_mod._pruner = lambda name, recipe: Always()
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
    # the baseline is never pruned: it is what every other trial must beat
    states = [t.state for t in _trials(storage, "pruned")]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert result.exit_code == 0 and "1 complete, 1 pruned" in result.output
    assert "no trial beat the recipe's own values" in result.output and not Path("experiments/tuned").exists()


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


def test_ctrl_c_marks_the_parent_killed_and_a_rerun_continues(recipe_path, tmp_path, monkeypatch, baseline_trails):
    from bench.tune import study as tune_mod

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

    from bench.tune import trial_score

    recipe = load_recipe("smoke")
    recipe = replace(recipe, model=replace(recipe.model, batchnorm_stats=stats))
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(7, "softmax")])
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.zeros_like(kernel), np.eye(7)[2] * 5])  # always class 2
    y_val = np.array([2, 2, 2, 0])  # macro-F1 of always-2 over all 7 labels, as evaluation: (2*3/7) / 7
    fit = SimpleNamespace(recipe=recipe, model=model, splits=SimpleNamespace(x_val=np.zeros((4, 4, 4)), y_val=y_val))
    result = SimpleNamespace(history={"val_macro_f1": [0.2, 0.9, 0.5]})
    expected = 0.9 if stats == "moving" else (6 / 7) / 7
    assert trial_score(fit, result) == pytest.approx(expected)


def _tune_args(recipe, study, storage, trials=2, *more):
    return [
        "tune",
        "--backbone",
        "baseline_cnn",
        "--head",
        "linear",
        "--recipe",
        recipe,
        "--data",
        "synthetic:300:1",
        "--trials",
        str(trials),
        "--storage",
        storage,
        "--study",
        study,
        "--experiment",
        "tune",
        "--pruner",
        "none",
        *more,
    ]


@pytest.mark.parametrize("name", ["/some/path", "../up", "a/b", "a\\b", "..", ".hidden"])
def test_a_study_name_is_a_name_not_a_path(recipe_path, tmp_path, name):
    result = CliRunner().invoke(cli, _tune_args(recipe_path, name, f"sqlite:///{tmp_path / 'optuna.db'}"))
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: --study") and "a study name is a name, not a path" in line and "--study " in line
    assert not (tmp_path / "optuna.db").exists() and not Path("experiments").exists()


def test_the_mlflow_database_is_refused_as_optuna_storage(recipe_path, tmp_path):
    """Optuna read MLflow's alembic_version as a newer Optuna ("pip install -U optuna") and added its
    tables to MLflow's database: the database is refused before Optuna opens it."""
    import sqlalchemy

    from bench import tracking

    tracking.ensure_experiment("tune", tracking.connect(None))  # MLflow's own store: mlruns/mlflow.db
    url = f"sqlite:///{(tmp_path / 'mlruns' / 'mlflow.db').resolve()}"
    engine = sqlalchemy.create_engine(url)
    before = set(sqlalchemy.inspect(engine).get_table_names())
    result = CliRunner().invoke(cli, _tune_args(recipe_path, "s", url))
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: --storage") and "MLflow tracking database" in line and "optuna.db" in line
    assert set(sqlalchemy.inspect(engine).get_table_names()) == before  # no Optuna table added
    engine.dispose()


def test_tune_prints_no_library_warnings(tmp_path, baseline_trails):
    """Optuna's ExperimentalWarning (its matplotlib plots, the heartbeat) and matplotlib's layout warnings
    once reached tune's output. pytest records warnings instead of printing them, so the warnings a user
    would see (Python's default filters) are recorded here and must be none from tune."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = _tune_args("smoke", "quiet", storage, 2, "--set", "phases.*.learning_rate=1e-3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    shown = [f"{w.category.__name__}: {w.message} ({w.filename})" for w in caught]
    assert not [w for w in shown if "optuna" in w.lower() or "matplotlib" in w.lower() or "bench" in w], shown
    runs = _mlflow_runs(tmp_path)
    parent = [r for r in runs if r.data.tags.get("bench.kind") == "study"][0]
    import mlflow

    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"optimization_history.png", "slice.png"} <= artifacts  # the plots were drawn, quietly


def test_a_trial_killed_with_its_worker_is_failed_and_rerun(recipe_path, tmp_path, monkeypatch):
    """SIGKILL a real worker mid-trial: its trial stayed RUNNING for ever and counted towards --trials.
    The rerun fails it (no heartbeat), runs it again with the same values, and completes the trials asked."""

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = _tune_args(recipe_path, "killed", storage, 2)
    CliRunner().invoke(cli, ["data", "check", "--data", "synthetic:300:1"])  # warm the synthetic cache
    cmd = [sys.executable, "-m", "bench.cli", *args, "--set", "phases.0.epochs=200"]  # long enough to be killed in
    worker = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        running = []
        while time.monotonic() < deadline and worker.poll() is None and not running:
            time.sleep(0.5)
            try:
                running = [t for t in _trials(storage, "killed") if t.state == optuna.trial.TrialState.RUNNING]
            except Exception:  # the worker has not created the study yet
                running = []
        assert worker.poll() is None and running, worker.communicate()[0].decode()[-2000:]
        time.sleep(2)  # inside the trial: building and training the model
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    assert [t.state for t in _trials(storage, "killed")] == [optuna.trial.TrialState.RUNNING]
    # A worker's heartbeat every 10 s, stale after 60 s: here (the worker is dead) stale after 2 s.
    from bench.tune import storage as optuna_storage

    monkeypatch.setattr(optuna_storage, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(optuna_storage, "STALE_SECONDS", 2)
    time.sleep(3)
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    trials = _trials(storage, "killed")
    states = [t.state for t in trials]
    assert states[0] == optuna.trial.TrialState.FAIL and "failure" not in trials[0].user_attrs
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and len(trials) == 3
    # the killed trial was the baseline: it ran again with the same values, once
    assert trials[1].user_attrs.get("baseline") and trials[1].params == trials[0].params
    assert sum(t.state == optuna.trial.TrialState.COMPLETE and bool(t.user_attrs.get("baseline")) for t in trials) == 1


def test_the_median_pruner_waits_for_three_trials_and_half_the_recipe_s_epochs():
    from bench.recipe_load import load_recipe
    from bench.tune import study as tune_mod

    recipe = load_recipe("cpu", ["phases.0.epochs=9"])
    pruner = tune_mod._pruner("median", recipe)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for value in (0.5, 0.5, 0.5):  # three finished trials at 0.5 every epoch
        trial = study.ask()
        for epoch in range(9):
            trial.report(value, step=epoch)
        study.tell(trial, value)
    slow = study.ask()
    for epoch in range(9):
        slow.report(0.1, step=epoch)  # far below the median from the first epoch on
        if slow.should_prune():
            break
    assert epoch == 4  # not before half of the 9 epochs
    assert isinstance(tune_mod._pruner("none", recipe), optuna.pruners.NopPruner)
