"""The checkpoint folder and the resume state: what an interrupted run continues from."""

import json

import keras
import numpy as np

from bench.models import build_model
from bench.train import CheckpointFolder, ResumeState, TrainResult


def _state(raw: dict) -> ResumeState:
    return ResumeState.from_dict(raw)


def test_a_resume_state_reads_and_writes_state_json_as_bench_always_wrote_it(tmp_path):
    """A checkpoint written by an older bench still resumes: the same keys, in the same order, None ones
    left out; keys it did not write yet read as None."""
    folder = CheckpointFolder(tmp_path)
    assert folder.state() is None and not folder.resumable()
    old = '{"phase": 0, "plan": [3, 2], "next_epoch": 2}'
    (tmp_path / "state.json").write_text(old)
    state = folder.state()
    assert state == ResumeState(0, 2, (3, 2)) and state.monitors is None and state.train_seconds is None
    folder.write_state(state)
    assert (tmp_path / "state.json").read_text() == old and folder.has_epoch() and folder.resumable()
    full = ResumeState(1, 4, (3, 2), {"early_stopping": {"best": 0.5, "wait": 0, "best_epoch": 3}}, 12.5)
    folder.write_state(full)
    assert list(json.loads((tmp_path / "state.json").read_text())) == [
        "phase",
        "plan",
        "next_epoch",
        "monitors",
        "train_seconds",
    ]
    assert folder.state() == full and ResumeState.from_dict(full.to_dict()) == full


def test_resume_position_continues_mid_phase_or_with_the_next_phase():
    assert _state({"next_epoch": 1, "phase": 0, "plan": [2, 3]}).position() == (1, 0, 0)
    assert _state({"next_epoch": 2, "phase": 0, "plan": [2, 3]}).position() == (2, 1, 2)
    assert _state({"next_epoch": 3, "phase": 1, "plan": [2, 3]}).position() == (3, 1, 2)


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
    CheckpointFolder(tmp_path / "ckpt").save_trained(model, result)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["trained.json", "trained.weights.h5"]
    keras.utils.set_random_seed(1)
    fresh, _ = build_model(backbone="baseline_cnn", head="linear")
    loaded = CheckpointFolder(tmp_path / "ckpt").load_trained(fresh)
    assert loaded.model is fresh and loaded.images_per_second == 250.0 and loaded.actual_epochs == [1, 1]
    assert loaded.history["loss"] == [1.5, 1.2] and np.isnan(loaded.history["val_macro_f1"][1])
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert CheckpointFolder(tmp_path / "none").load_trained(fresh) is None


def test_a_mid_training_resume_gets_the_earlier_epochs_from_the_logged_history():
    # plan [3, 2]: phase 0 stopped early after epochs 0-1, phase 1 ran epoch 3, the process died in epoch 4
    state = {"phase": 1, "plan": [3, 2], "next_epoch": 4}
    result = TrainResult(None, history={"loss": [0.5], "val_loss": [0.7], "epoch": [4]}, phase_starts=[4])
    result.actual_epochs = [3, 2]  # what Trainer.run reports: phase 0 as planned
    logged = {"loss": {0: 2.0, 1: 1.0, 3: 0.8, 4: 0.5}, "val_loss": {0: 2.1, 1: 1.1, 3: 0.9}, "val_macro_f1": {}}
    _state(state).add_earlier_epochs(result, logged)
    assert result.history["epoch"] == [0, 1, 3, 4]
    assert result.history["loss"] == [2.0, 1.0, 0.8, 0.5] and result.history["val_loss"] == [2.1, 1.1, 0.9, 0.7]
    assert result.phase_starts == [0, 3] and result.actual_epochs == [2, 2]
    fresh = TrainResult(None, history={"loss": [1.0], "epoch": [0]})
    _state({"phase": 0, "plan": [2], "next_epoch": 0}).add_earlier_epochs(fresh, {"loss": {0: 1.0}})
    assert fresh.history == {"loss": [1.0], "epoch": [0]}  # nothing earlier: unchanged


def test_a_resumed_budgeted_run_places_its_phases_by_the_re_fitted_plan():
    # plan [5, 10] at the interruption (after epochs 0-2); resumed, the budget grew phase 0 to 8 epochs
    state = {"phase": 0, "plan": [5, 10], "next_epoch": 3}
    result = TrainResult(None, history={"loss": [0.5] * 7, "epoch": list(range(3, 10))}, planned_epochs=[8, 10])
    result.actual_epochs = [8, 2]
    _state(state).add_earlier_epochs(result, {"loss": {0: 2.0, 1: 1.0, 2: 0.9}})
    assert result.history["epoch"] == list(range(10)) and result.phase_starts == [0, 8]
    assert result.actual_epochs == [8, 2]


def test_best_weights_loader_gives_the_trained_part_s_weights_and_keeps_the_model_s(tmp_path):
    """A head-only phase trains ``model.head`` on cached features; the checkpoint holds the whole model."""
    from bench.models import build_model

    model, _ = build_model(backbone="baseline_cnn", head="linear", image_size=8)
    assert CheckpointFolder(tmp_path).best_weights_loader(model, model.head)(None) is None
    assert CheckpointFolder(tmp_path).best_weights_loader(model, model.head)("best-0-1.weights.h5") is None
    saved, saved_head = model.get_weights(), model.head.get_weights()
    model.save_weights(tmp_path / "best-0-1.weights.h5")
    changed = [w + 1 for w in saved]
    model.set_weights(changed)
    head = CheckpointFolder(tmp_path).best_weights_loader(model, model.head)("best-0-1.weights.h5")
    assert len(head) == len(saved_head) < len(saved)
    for a, b in zip(head, saved_head, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), changed, strict=True):
        np.testing.assert_array_equal(a, b)
