import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import cli

SUBCOMMANDS = [
    [],
    ["data"],
    ["data", "check"],
    ["data", "synth"],
    ["data", "preview"],
    ["list"],
    ["run"],
    ["compare"],
    ["tune"],
    ["profile"],
    ["predict"],
    ["live"],
    ["export"],
    ["explain"],
]

MINI_TOML = """
description = "two short phases on tiny data (tests)"
[data]
max_train = 96
max_eval = 48
[model.head_options.hybrid]
projection_dim = 16
num_heads = 2
ffn_multiplier = 1.0
branch_units = 8
fusion_units = 16
[class_weights]
boost = { disgust = 2.0 }
[[phases]]
name = "head"
epochs = 1
train = "head"
schedule = "cosine"
warmup_epochs = 0.5
augment = false
[[phases]]
name = "all"
epochs = 1
train = "all"
optimizer = "adam"
learning_rate = 1e-4
[run]
seed = 5
"""


@pytest.fixture
def mini(tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(MINI_TOML)
    return str(path)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("args", SUBCOMMANDS)
def test_every_command_has_help(args):
    result = invoke(*args, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.parametrize("args", [a for a in SUBCOMMANDS if a != ["data"]])
def test_every_command_help_ends_with_examples_of_itself(args):
    """Examples stay one per line (not re-wrapped) and each one runs the command it documents."""
    lines = invoke(*args, "--help").output.splitlines()
    examples = lines[lines.index("  Examples:") + 1 :]
    assert examples and all(line.startswith("    bench ") for line in examples)
    if args:
        assert all(line.split()[1 : 1 + len(args)] == args for line in examples)


def test_export_takes_the_file_type_as_to_and_format_as_the_report_style(tmp_path):
    """--format means the printed style in every command; export's old --format tflite names the fix."""
    model = tmp_path / "m.keras"
    model.write_text("")
    result = invoke("export", "--model", model, "--format", "tflite", "--out", tmp_path / "m.tflite")
    assert result.exit_code == 2 and "--to tflite" in result.output
    result = invoke("export", "--model", model, "--to", "tflite", "--format", "yaml", "--out", tmp_path / "m.tflite")
    assert result.exit_code == 2 and "table, json" in result.output


def test_every_option_has_help_text():
    import click

    def commands(group, path=()):
        for name, command in group.commands.items():
            yield (*path, name), command
            if isinstance(command, click.Group):
                yield from commands(command, (*path, name))

    missing = [
        f"{' '.join(path)} {param.opts[-1]}"
        for path, command in commands(cli)
        for param in command.params
        if isinstance(param, click.Option) and not param.help and param.name != "help"
    ]
    assert not missing, missing


def test_cli_import_does_not_load_tensorflow_mlflow_or_optuna():
    code = "import sys, bench.cli; print([m for m in ('tensorflow', 'mlflow', 'optuna', 'keras') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_data_synth_and_check(tmp_path):
    out = tmp_path / "s.csv"
    assert invoke("data", "synth", "--out", str(out), "--n", "120", "--seed", "1").exit_code == 0
    result = invoke("data", "check", "--data", str(out))
    assert result.exit_code == 0
    assert "disgust" in result.output and "identical-image groups: 0" in result.output
    report = json.loads(invoke("data", "check", "--data", str(out), "--format", "json").output)
    assert report["n_images"] == 120 and len(report["balanced_class_weights"]) == 7


def test_bad_data_path_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["data", "check", "--data", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and "Kaggle" in result.output


def test_list_table_and_json():
    table = invoke("list")
    assert table.exit_code == 0 and "resnet50" in table.output and "hybrid" in table.output
    catalog = json.loads(invoke("list", "--format", "json").output)
    by_name = {b["name"]: b for b in catalog["backbones"]}
    assert by_name["resnet50"]["layers"] == 175 and by_name["xception"]["min_size"] == 71
    assert by_name["baseline_cnn"]["imagenet"] is False
    assert {h["name"] for h in catalog["heads"]} == {"hybrid", "mlp", "linear", "conv_gap"}
    assert by_name["mini_xception"]["imagenet"] is False and by_name["mini_xception"]["min_size"] == 32


def test_run_requires_a_backbone_and_rejects_unknown_ones(mini):
    result = CliRunner().invoke(cli, ["run", "--recipe", mini, "--backbone", "baseline_cnn"])
    assert result.exit_code == 2 and "error: --data is required" in result.output  # no 15 silent minutes on fake faces
    data = ["--data", "synthetic:300:1"]
    assert "--backbone" in CliRunner().invoke(cli, ["run", "--recipe", mini, *data]).output
    result = CliRunner().invoke(cli, ["run", "--recipe", mini, "--backbone", "resnet5", *data])
    assert result.exit_code == 2 and "Did you mean resnet50" in result.output
    result = CliRunner().invoke(
        cli, ["run", "--recipe", mini, "--backbone", "baseline_cnn", "--set", "data.batch_size=0", *data]
    )
    assert result.exit_code == 2 and "data.batch_size" in result.output


def _runs(experiment):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path('mlruns/mlflow.db').resolve()}")
    exp = mlflow.get_experiment_by_name(experiment)
    return mlflow.MlflowClient(), mlflow.search_runs([exp.experiment_id], output_format="list")


def test_run_end_to_end_logs_everything_to_mlflow(mini, tmp_path):
    result = invoke(
        "run",
        "--recipe",
        mini,
        "--backbone",
        "baseline_cnn",
        "--head",
        "hybrid",
        "--data",
        "synthetic:400:1",
        "--experiment",
        "e2e",
        "--set",
        "data.batch_size=16",
        "--set",
        'model.batchnorm_stats="recomputed"',
        "--set",
        'model.batchnorm="auto"',
    )
    assert result.exit_code == 0, result.output
    assert "macro_f1=" in result.output and "mlflow ui --backend-store-uri sqlite:///" in result.output
    client, runs = _runs("e2e")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    for key in (
        "backbone",
        "head",
        "weights",
        "seed",
        "image_size",
        "data_fingerprint",
        "val_fingerprint",
        "test_fingerprint",
        "split_protocol",
        "recipe.data.batch_size",
        "recipe.phases.1.learning_rate",
        "n_train",
        "class_weights",
    ):
        assert key in params, key
    assert params["recipe.data.batch_size"] == "16" and params["image_size"] == "48"
    metrics = run.data.metrics
    for key in (
        "test_macro_f1",
        "test_balanced_accuracy",
        "test_kappa",
        "test_log_loss",
        "test_ece",
        "test_roc_auc",
        "test_top2_accuracy",
        "test_recall_disgust",
        "val_macro_f1",
        "params_total",
        "fit_seconds",
        "train_images_per_second",
        "input_wait_fraction",
        "epochs_actual",
        "batchnorm_recompute_seconds",
    ):
        assert key in metrics, key
    assert metrics["batchnorm_layers_recomputed"] >= 4  # baseline_cnn's, trained by the last phase ("all")
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1]
    f1_history = client.get_metric_history(run.info.run_id, "val_macro_f1")
    assert sorted(m.step for m in f1_history) == [0, 1, 2]  # the two epochs', then the evaluated model's
    assert metrics["val_macro_f1"] == pytest.approx(next(m.value for m in f1_history if m.step == 2))
    assert {"hardware", "tensorflow", "keras", "precision", "onednn"} <= set(run.data.tags)
    assert run.data.tags["batchnorm"] == "fused" and params["recipe.model.batchnorm"] == "auto"  # auto, resolved
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts >= {
        "confusion_matrix.png",
        "per_class_recall.png",
        "training_curves.png",
        "reliability.png",
        "classification_report.txt",
        "predictions.npz",
        "recipe.toml",
        "model.keras",
    }
    local = Path(client.download_artifacts(run.info.run_id, "predictions.npz", str(tmp_path)))
    with np.load(local) as z:
        assert z["test_y_prob"].shape == (len(z["test_y_true"]), 7)
        assert np.allclose(z["test_y_prob"].sum(1), 1, atol=1e-4)
    import keras

    model = keras.models.load_model(client.download_artifacts(run.info.run_id, "model.keras", str(tmp_path)))
    assert model.output.shape == (None, 7)
    # the run's model serves bench predict directly
    from PIL import Image

    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(tmp_path / "crop.png")
    result = invoke("predict", "--run", run.info.run_id, "--no-detect", "--format", "json", str(tmp_path / "crop.png"))
    assert result.exit_code == 0, result.output
    (face,) = json.loads(result.stdout)["faces"]
    assert np.allclose(
        list(face["probabilities"].values()), model.predict(np.full((1, 48, 48, 1), 128.0), verbose=0)[0], atol=1e-5
    )


def test_nan_run_ends_failed_with_one_line(mini):
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--recipe",
            mini,
            "--backbone",
            "baseline_cnn",
            "--head",
            "linear",
            "--data",
            "synthetic:400:1",
            "--experiment",
            "nan",
            "--no-save-model",
            "--set",
            'phases.*.optimizer="sgd"',
            "--set",
            "phases.*.learning_rate=1e5",
            "--set",
            "phases.*.epochs=5",
            "--set",
            'phases.*.train="all"',
        ],
    )
    assert result.exit_code == 2
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "lower the learning rate" in error_lines[0]
    _, runs = _runs("nan")
    assert runs[0].info.status == "FAILED"
    assert "TrainingDiverged" in runs[0].data.tags["failure_reason"]


def test_several_backbones_and_seeds_run_with_the_identical_recipe(mini):
    result = invoke(
        "run",
        "--recipe",
        mini,
        "--backbone",
        "baseline_cnn",
        "--head",
        "linear",
        "--seed",
        "1",
        "--seed",
        "2",
        "--data",
        "synthetic:300:1",
        "--experiment",
        "seeds",
        "--no-save-model",
    )
    assert result.exit_code == 0, result.output
    # Not a terminal: one progress line per epoch, each naming the run's place in the job.
    for prefix in ("[1/2] baseline_cnn+linear s1 | head epoch 1/2", "[2/2] baseline_cnn+linear s2 | all epoch 2/2"):
        assert prefix in result.output
    _, runs = _runs("seeds")
    assert sorted(r.data.params["seed"] for r in runs) == ["1", "2"]
    assert len({r.data.params["recipe.phases.0.learning_rate"] for r in runs}) == 1


def test_deterministic_runs_give_identical_metrics(mini, tmp_path):
    """--deterministic in two separate processes (op determinism is process-wide)."""

    def once(name):
        cmd = [
            sys.executable,
            "-m",
            "bench.cli",
            "run",
            "--recipe",
            mini,
            "--backbone",
            "baseline_cnn",
            "--head",
            "linear",
            "--data",
            "synthetic:300:1",
            "--experiment",
            name,
            "--deterministic",
            "--no-save-model",
        ]
        subprocess.run(cmd, check=True, capture_output=True, cwd=tmp_path)
        _, runs = _runs(name)
        return {k: v for k, v in runs[0].data.metrics.items() if k.startswith(("test_", "val_"))}

    first, second = once("det1"), once("det2")
    assert first and first == second


def test_interrupted_run_is_killed_and_resumes_to_finished(mini, monkeypatch):
    from bench import train

    original = train.Trainer._fit
    calls = {"n": 0}

    def interrupt_second_phase(self, phase, phase_index, *args):
        calls["n"] += 1
        if phase_index == 1 and calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, phase, phase_index, *args)

    monkeypatch.setattr(train.Trainer, "_fit", interrupt_second_phase)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--recipe",
            mini,
            "--backbone",
            "baseline_cnn",
            "--head",
            "linear",
            "--data",
            "synthetic:300:1",
            "--experiment",
            "resume",
            "--no-save-model",
        ],
    )
    _, runs = _runs("resume")
    run_id = runs[0].info.run_id
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        f"interrupted (Ctrl-C): run {run_id} is KILLED; continue it with `bench run --resume {run_id}`"
    )
    assert runs[0].info.status == "KILLED" and "Ctrl-C" in runs[0].data.tags["failure_reason"]
    store = Path("mlruns/mlflow.db").resolve()
    assert runs[0].data.tags["bench.checkpoint_dir"] == str(store.parent / "checkpoints" / run_id)
    elsewhere = Path("elsewhere")
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # another folder: the store is named, the checkpoint found through the run
    result = invoke("run", "--resume", run_id, "--no-save-model", "--tracking-uri", f"sqlite:///{store}")
    assert result.exit_code == 0, result.output
    monkeypatch.chdir("..")
    client, runs = _runs("resume")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and "failure_reason" not in runs[0].data.tags
    assert "test_macro_f1" in runs[0].data.metrics
    steps = [m.step for m in client.get_metric_history(run_id, "val_loss")]
    assert steps == [0, 1]  # phase 1's epoch before the interruption, phase 2's after the resume
    result = CliRunner().invoke(cli, ["run", "--resume", run_id])
    assert result.exit_code == 2 and "already finished" in result.output


def test_a_resume_that_cannot_start_leaves_the_run_killed(mini, monkeypatch):
    from bench import train

    def interrupt_at_once(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train.Trainer, "_fit", interrupt_at_once)
    args = ["--recipe", mini, "--backbone", "baseline_cnn", "--head", "linear", "--data", "synthetic:300:1"]
    result = CliRunner().invoke(cli, ["run", *args, "--experiment", "nockpt", "-q"])
    _, (run,) = _runs("nockpt")
    assert result.exit_code == 130 and "before its first epoch ended" in result.output
    result = CliRunner().invoke(cli, ["run", "--resume", run.info.run_id])
    assert result.exit_code == 2 and "has no checkpoint in" in result.output and "Traceback" not in result.output
    _, (run,) = _runs("nockpt")
    assert run.info.status == "KILLED"


def test_offline_imagenet_through_the_cli_is_one_line(mini, monkeypatch):
    import keras

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/x.h5")

    monkeypatch.setattr(keras.applications, "Xception", offline)
    result = CliRunner().invoke(
        cli, ["run", "--recipe", mini, "--backbone", "xception", "--weights", "imagenet", "--data", "synthetic:300:1"]
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "xception_weights_tf_dim_ordering_tf_kernels_notop.h5" in errors[0]
    assert "Traceback" not in result.output


def test_smoke_recipe_runs_every_phase_of_the_paper_structure():
    result = invoke(
        "run",
        "--recipe",
        "smoke",
        "--backbone",
        "baseline_cnn",
        "--data",
        "synthetic:400:1",
        "--experiment",
        "smoke",
        "--no-save-model",
    )
    assert result.exit_code == 0, result.output
    _, runs = _runs("smoke")
    tags = runs[0].data.tags
    assert tags["epochs_actual_per_phase"] == "[1, 1, 1, 1, 1]"


ONE_PHASE_TOML = (
    MINI_TOML.split("[[phases]]")[0]
    + """
[[phases]]
name = "all"
epochs = 1
train = "all"
"""
)


# Two of the four Keras-application backbones: xception, whose 71 px minimum raises the input size, and
# mobilenet_v3_small, the cheapest. ResNet50 and EfficientNetB3 go through the same application wrapper
# and run path (100 s of the suite between them); every backbone is built, run and saved in test_models.
@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "xception"])
def test_keras_application_backbones_train_end_to_end(tmp_path, backbone):
    recipe = tmp_path / "one_phase.toml"
    recipe.write_text(ONE_PHASE_TOML)
    result = invoke(
        "run",
        "--recipe",
        str(recipe),
        "--backbone",
        backbone,
        "--head",
        "hybrid",
        "--data",
        "synthetic:300:1",
        "--experiment",
        "apps",
        "--no-save-model",
        "--set",
        "data.max_train=48",
        "--set",
        "data.max_eval=32",
    )
    assert result.exit_code == 0, result.output
    _, runs = _runs("apps")
    assert runs[0].info.status == "FINISHED"
    expected = "71" if backbone == "xception" else "48"
    assert runs[0].data.params["image_size"] == expected


def test_sigterm_is_handled_like_ctrl_c():
    import os
    import signal

    from bench import interrupts
    from bench.cli import _terminate_like_ctrl_c

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        _terminate_like_ctrl_c()
        with pytest.raises(KeyboardInterrupt, match=r"^interrupted \(SIGTERM\)$"):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.5) if hasattr(signal, "sigtimedwait") else None
        assert interrupts.exit_code() == 143
    finally:
        interrupts.reset()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Terminal:
    def __init__(self, tty: bool):
        self.text, self.tty = "", tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return self.tty


def test_progress_line_rewrites_itself_on_a_terminal_and_prints_epochs_elsewhere(monkeypatch):
    from bench.cli import ProgressLine

    status = {
        "phase": "train",
        "epoch": 2,
        "epochs": 10,
        "step": 30,
        "steps": 150,
        "loss": 1.2345,
        "images_per_second": 301.4,
        "val_macro_f1": 0.4123,
        "elapsed": 75.0,
        "eta": 3725.0,
        "epoch_end": False,
    }
    monkeypatch.setenv("COLUMNS", "200")
    tty = _Terminal(True)
    line = ProgressLine("[1/3] baseline_cnn+mlp s42", tty)
    line(status)
    line({**status, "step": 31})
    line.close()
    assert tty.text.count("\r") == 2 and tty.text.endswith("\n") and tty.text.count("\n") == 1
    assert (
        "[1/3] baseline_cnn+mlp s42 | train epoch 2/10 step 31/150 | 301 img/s | loss 1.234 | "
        "val macro-F1 0.412 | 1:15 elapsed, ETA 1:02:05" in tty.text
    )
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal: one row, never a wrapped line
    narrow = _Terminal(True)
    ProgressLine("[1/3] baseline_cnn+mlp s42", narrow)(status)
    assert len(narrow.text) == 60 and narrow.text.startswith("\r[1/3] baseline_cnn+mlp s42 | train epoch 2/10")
    log = _Terminal(False)
    line = ProgressLine("[1/1] x", log)
    line(status)  # mid-epoch: nothing in a log
    line({**status, "epoch_end": True, "step": None, "val_macro_f1": float("nan")})
    line.close()
    assert log.text == "[1/1] x | train epoch 2/10 | 301 img/s | loss 1.234 | 1:15 elapsed, ETA 1:02:05\n"


def test_a_logging_failure_keeps_the_trained_model_and_resume_logs_it(mini, tmp_path, monkeypatch):
    """The run's artifact folder turns into a file after training (what a disk that refuses writes
    looks like to MLflow, and it stops root too): one error line with the path and the resume command,
    the run FAILED with that reason, the trained model kept; the resume logs the same model without
    training again, with its throughput and curves, and drops the reason. Both are quiet runs (-q) of a
    recipe that names its head: no progress lines, the recipe's head, the one summary line."""
    from bench import runner

    original = runner._cost_metrics
    blocked = {}

    def block_artifacts(model):
        import mlflow

        folder = Path(mlflow.get_artifact_uri().removeprefix("file://")).parent
        folder.rename(folder.with_suffix(".moved"))
        folder.write_text("")
        blocked["folder"] = folder
        return original(model)

    monkeypatch.setattr(runner, "_cost_metrics", block_artifacts)
    recipe = Path(mini).with_name("linear_head.toml")
    recipe.write_text(Path(mini).read_text() + '\n[model]\nhead = "linear"\n')
    args = ["run", "--recipe", str(recipe), "--backbone", "baseline_cnn", "--data", "synthetic:300:1"]
    result = CliRunner().invoke(cli, [*args, "--experiment", "disk", "-q"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "epoch 1/2" not in result.output  # quiet, though it trained both epochs before the logging failed
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    client, (run,) = _runs("disk")
    run_id = run.info.run_id
    assert str(blocked["folder"]) in error and f"`bench run --resume {run_id}`" in error
    assert "the trained model is kept" in error
    assert run.info.status == "FAILED" and str(blocked["folder"]) in run.data.tags["failure_reason"]
    assert run.data.params["head"] == "linear"  # the recipe's [model] head, without --head
    assert (tmp_path / "mlruns" / "checkpoints" / run_id / "trained.weights.h5").is_file()

    monkeypatch.setattr(runner, "_cost_metrics", original)
    blocked["folder"].unlink()
    blocked["folder"].with_suffix(".moved").rename(blocked["folder"])
    result = invoke("run", "--resume", run_id, "-q")
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output.split("run=")[0] and "img/s" in result.output
    assert "epoch " not in result.output and "baseline_cnn+linear @48px  macro_f1=" in result.output
    _, (run,) = _runs("disk")
    assert run.info.status == "FINISHED" and "failure_reason" not in run.data.tags
    assert {"model.keras", "training_curves.png", "recipe.toml"} <= {a.path for a in client.list_artifacts(run_id)}
    assert run.data.tags["epochs_actual_per_phase"] == "[1, 1]"
    assert run.data.metrics["train_images_per_second"] > 0
    losses = [m.value for m in client.get_metric_history(run_id, "test_log_loss")]
    assert len(losses) == 2 and losses[0] == losses[1]  # the same trained model, evaluated twice
    assert not (tmp_path / "mlruns" / "checkpoints" / run_id).exists()  # removed once all was logged


def test_an_unopenable_tracking_store_fails_in_seconds(mini):
    import time

    tic = time.perf_counter()
    result = CliRunner().invoke(
        cli,
        ["run", "--recipe", mini, "--backbone", "baseline_cnn", "--data", "synthetic:300:1", "--tracking-uri"]
        + ["sqlite:////proc/bench-test/mlflow.db"],
    )
    assert result.exit_code == 2 and time.perf_counter() - tic < 30
    assert result.output.splitlines()[-1].startswith("error: the folder of the tracking store")
