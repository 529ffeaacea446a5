"""The runner's keep-then-log protocol: the trained model and its record survive a failed logging step."""

import errno
import json

import keras
import numpy as np

from bench import runner
from bench.models import build_model
from bench.train import TrainResult, add_earlier_epochs


def test_save_trained_then_load_trained_gives_the_same_model_and_record(tmp_path):
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    result = TrainResult(
        model,
        history={"loss": [1.5, 1.2], "val_macro_f1": [0.1, float("nan")], "epoch": [0, 1]},
        phase_starts=[0, 1],
        planned_epochs=[1, 1],
        actual_epochs=[1, 1],
        train_seconds=3.5,
        images_per_second=250.0,
        input_wait_fraction=0.1,
        train_passes=2.0,
    )
    runner.save_trained(tmp_path / "ckpt", model, result)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["trained.json", "trained.weights.h5"]
    keras.utils.set_random_seed(1)
    fresh, _ = build_model(backbone="baseline_cnn", head="linear")
    loaded = runner.load_trained(tmp_path / "ckpt", fresh)
    assert loaded.model is fresh and loaded.images_per_second == 250.0 and loaded.actual_epochs == [1, 1]
    assert loaded.history["loss"] == [1.5, 1.2] and np.isnan(loaded.history["val_macro_f1"][1])
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert runner.load_trained(tmp_path / "none", fresh) is None


def test_kept_message_says_what_survives_and_how_to_go_on(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", "/data/x")
    uri = runner.trk.default_uri()
    assert runner._kept_message(None, full, None, uri) == (
        "run (not started) failed: '/data/x': No space left on device; free space or fix permissions, then run it again"
    )
    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"phase": 0, "plan": [1], "next_epoch": 1}))
    assert "its last epoch checkpoint is kept" in runner._kept_message("r1", full, folder, uri)
    (folder / "trained.json").write_text("{}")
    message = runner._kept_message("r1", full, folder, uri)
    assert "the trained model is kept in" in message and message.endswith("then `bench run --resume r1`")
    other = runner._kept_message("r1", full, folder, "sqlite:////elsewhere/mlflow.db")
    assert other.endswith("`bench run --resume r1 --tracking-uri sqlite:////elsewhere/mlflow.db`")


def test_checkpoints_live_beside_a_sqlite_store_whatever_the_current_folder(tmp_path):
    assert runner.checkpoint_root(f"sqlite:///{tmp_path}/store/mlflow.db") == tmp_path / "store" / "checkpoints"
    assert runner.checkpoint_root("http://tracking:5000") == (tmp_path / "mlruns" / "checkpoints")


def test_interrupted_says_what_to_run_next(tmp_path):
    uri = runner.trk.default_uri()
    assert "nothing to resume" in str(runner._interrupted(None, None, uri))
    assert "run the command again" in str(runner._interrupted("r1", tmp_path, uri))
    (tmp_path / "state.json").write_text("{}")
    assert str(runner._interrupted("r1", tmp_path, uri)).endswith("continue it with `bench run --resume r1`")


def test_a_mid_training_resume_gets_the_earlier_epochs_from_the_logged_history():
    # plan [3, 2]: phase 0 stopped early after epochs 0-1, phase 1 ran epoch 3, the process died in epoch 4
    state = {"phase": 1, "plan": [3, 2], "next_epoch": 4}
    result = TrainResult(None, history={"loss": [0.5], "val_loss": [0.7], "epoch": [4]}, phase_starts=[4])
    result.actual_epochs = [3, 2]  # what Trainer.run reports: phase 0 as planned
    logged = {"loss": {0: 2.0, 1: 1.0, 3: 0.8, 4: 0.5}, "val_loss": {0: 2.1, 1: 1.1, 3: 0.9}, "val_macro_f1": {}}
    add_earlier_epochs(result, state, logged)
    assert result.history["epoch"] == [0, 1, 3, 4]
    assert result.history["loss"] == [2.0, 1.0, 0.8, 0.5] and result.history["val_loss"] == [2.1, 1.1, 0.9, 0.7]
    assert result.phase_starts == [0, 3] and result.actual_epochs == [2, 2]
    fresh = TrainResult(None, history={"loss": [1.0], "epoch": [0]})
    add_earlier_epochs(fresh, {"phase": 0, "plan": [2], "next_epoch": 0}, {"loss": {0: 1.0}})
    assert fresh.history == {"loss": [1.0], "epoch": [0]}  # nothing earlier: unchanged


def test_a_resumed_budgeted_run_places_its_phases_by_the_re_fitted_plan():
    # plan [5, 10] at the interruption (after epochs 0-2); resumed, the budget grew phase 0 to 8 epochs
    state = {"phase": 0, "plan": [5, 10], "next_epoch": 3}
    result = TrainResult(None, history={"loss": [0.5] * 7, "epoch": list(range(3, 10))}, planned_epochs=[8, 10])
    result.actual_epochs = [8, 2]
    add_earlier_epochs(result, state, {"loss": {0: 2.0, 1: 1.0, 2: 0.9}})
    assert result.history["epoch"] == list(range(10)) and result.phase_starts == [0, 8]
    assert result.actual_epochs == [8, 2]
