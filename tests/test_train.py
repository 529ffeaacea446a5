import json
import math

import keras
import numpy as np
import pytest

from bench.callbacks import Execution, TrainingDiverged
from bench.config import PhaseConfig, Recipe
from bench.data import load_data
from bench.models import build_model
from bench.recipe_load import from_dict, load_recipe
from bench.train import (
    CheckpointFolder,
    ResumeState,
    Trainer,
    checkpoints,
    compile_phase,
    fit_plan,
    make_schedule,
    prepare_splits,
)


def mini_recipe(**run):
    """Two short phases (head only, then everything) on 96 tiny images: seconds, not minutes."""
    return from_dict(
        Recipe,
        {
            "name": "mini",
            "data": {"max_train": 96, "max_eval": 48, "batch_size": 32, "augment": {"occlusion": 0.2}},
            "class_weights": {"scheme": "balanced", "boost": {"disgust": 2.0}},
            "phases": [
                {
                    "name": "head",
                    "epochs": 1,
                    "train": "head",
                    "optimizer": "adamw",
                    "learning_rate": 1e-3,
                    "schedule": "cosine",
                    "warmup_epochs": 0.5,
                    "augment": False,
                },
                {
                    "name": "all",
                    "epochs": 1,
                    "train": "all",
                    "optimizer": "adam",
                    "learning_rate": 1e-4,
                    "early_stopping_patience": 2,
                },
            ],
            "run": {"seed": 3, **run},
        },
    )


@pytest.fixture(scope="module")
def data():
    return load_data("synthetic:400:2", cache=False)


def test_fit_plan_fits_the_budget_and_keeps_every_phase():
    assert fit_plan([10, 5, 5], 0, 1, epoch_seconds=10, seconds_left=1000) == [10, 5, 5]
    new = fit_plan([10, 5, 5], 0, 1, epoch_seconds=10, seconds_left=95)
    assert sum(new) - 1 <= 9.5 and all(n >= 1 for n in new) and new[0] >= 1
    assert fit_plan([30], 0, 1, epoch_seconds=60, seconds_left=600) == [1 + math.floor(29 * 10 / 29)]


def test_fit_plan_from_a_later_phase_keeps_what_ran_and_never_passes_the_recipe():
    # phase 1 has run 2 of its 10 epochs; 4 epochs' time left for its 8 and phase 2's 10: scale 4/18
    assert fit_plan([3, 10, 10], 1, 2, epoch_seconds=1, seconds_left=4) == [3, 2 + 1, 2]
    assert fit_plan([3, 10, 10], 1, 2, epoch_seconds=1, seconds_left=10**6) == [3, 10, 10]  # no growth past it
    assert fit_plan([20], 0, 12, epoch_seconds=5, seconds_left=1) == [12]  # out of time: stop where it is


def test_compile_phase_uses_the_phase_s_optimizer_smoothing_and_steps_per_execution():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(inputs))
    phase = PhaseConfig(optimizer="adam", label_smoothing=0.1)
    compile_phase(model, phase, steps_per_epoch=10, epochs=2, jit_compile=False, steps_per_execution=4)
    assert isinstance(model.optimizer, keras.optimizers.Adam) and model.steps_per_execution == 4
    assert model.loss.label_smoothing == 0.1 and model.jit_compile is False


def test_schedules():
    phase = PhaseConfig(learning_rate=1e-3, schedule="cosine", warmup_epochs=1, min_lr_fraction=0.1)
    sched = make_schedule(phase, steps_per_epoch=10, epochs=5)
    assert float(sched(0)) < 1e-4 and float(sched(10)) == pytest.approx(1e-3, rel=1e-3)
    assert float(sched(50)) == pytest.approx(1e-4, rel=1e-3)
    assert make_schedule(PhaseConfig(learning_rate=2e-3), 10, 5) == 2e-3
    restarts = make_schedule(PhaseConfig(learning_rate=1e-3, schedule="cosine_restarts", restart_epochs=1), 10, 5)
    assert float(restarts(10)) == pytest.approx(1e-3, rel=1e-3)


def test_prepare_splits_limits_dedupes_and_weights(data):
    splits = prepare_splits(data, mini_recipe())
    assert len(splits.y_train) == pytest.approx(96, abs=4) and len(splits.y_val) <= 49
    assert splits.class_weights[1] > splits.class_weights[3]  # rare disgust outweighs happy
    dedupe = load_recipe("smoke", ["data.dedupe=true"])
    assert prepare_splits(data, dedupe).n_deduped == 0


def test_phases_freeze_and_unfreeze_and_train_the_right_weights(data):
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    recipe = mini_recipe()
    backbone_before = [w.copy() for w in model.backbone.get_weights()]
    head_before = [w.copy() for w in model.head.get_weights()]
    trainer = Trainer(
        model, from_dict(Recipe, {**_raw(recipe), "phases": [_raw(recipe)["phases"][0]]}), prepare_splits(data, recipe)
    )
    result = trainer.run()
    backbone_after = model.backbone.get_weights()
    conv_kernels = [i for i, w in enumerate(backbone_before) if w.ndim == 4]
    assert all(np.array_equal(backbone_before[i], backbone_after[i]) for i in conv_kernels)
    assert any(not np.array_equal(a, b) for a, b in zip(head_before, model.head.get_weights(), strict=True))
    assert result.actual_epochs == [1]
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    result = trainer.run()
    assert result.actual_epochs == [1, 1] and result.phase_starts == [0, 1] and result.end_epoch == 2
    assert any(not np.array_equal(backbone_after[i], model.backbone.get_weights()[i]) for i in conv_kernels)
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1", "learning_rate"}
    assert len(result.history["val_macro_f1"]) == 2
    # the learning rate at each epoch's end: phase 0's cosine has decayed below its peak, phase 1 is constant
    head_rate, all_rate = result.history["learning_rate"]
    assert 0 <= head_rate < 1e-3 and all_rate == pytest.approx(1e-4)
    assert result.images_per_second > 0 and 0 <= result.input_wait_fraction < 1


def test_nan_loss_raises(data):
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe())
    raw["phases"] = [{"epochs": 5, "train": "all", "optimizer": "sgd", "learning_rate": 1e5}]
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        Trainer(model, from_dict(Recipe, raw), prepare_splits(data, from_dict(Recipe, raw))).run()


def test_budget_shrinks_the_plan(data):
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=0.001))
    raw["phases"][0]["epochs"] = 5
    raw["phases"][1]["epochs"] = 5
    result = Trainer(model, from_dict(Recipe, raw), prepare_splits(data, from_dict(Recipe, raw))).run()
    assert result.budget_hit
    assert sum(result.actual_epochs) < 10 and result.actual_epochs[0] >= 1


def _budgeted(data, epochs: int, **phase) -> Trainer:
    """A 2-minute budget over one constant-rate phase of ``epochs`` epochs (3 steps each), seeded."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=2.0))
    raw["phases"] = [dict(raw["phases"][1], epochs=epochs, early_stopping_patience=0) | phase]
    recipe = from_dict(Recipe, raw)
    return Trainer(model, recipe, prepare_splits(data, recipe))


def _first_estimate(monkeypatch, trainer: Trainer, seconds: float) -> None:
    """The first epoch timed as ``seconds`` (a busy machine); later estimates are the trainer's own."""
    first, real = iter([seconds]), trainer._epoch_seconds
    monkeypatch.setattr(trainer, "_epoch_seconds", lambda wall: next(first, None) or real(wall))


def _raw(recipe):
    from bench.recipe_io import to_dict

    return to_dict(recipe)


def test_fixed_steps_per_epoch_streams_past_the_end_of_the_split(data):
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(steps_per_epoch=5))  # 96 images = 3 batches, so each epoch wraps around
    raw["phases"] = [dict(raw["phases"][1], epochs=2, early_stopping_patience=0)]
    recipe = from_dict(Recipe, raw)
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    result = trainer.run()
    assert trainer.steps_per_epoch == 5
    assert len(trainer.timer.records) == 10
    assert result.train_passes == pytest.approx(10 * 32 / len(trainer.splits.y_train))
    assert int(model.optimizer.iterations.numpy()) == 10
    assert len(result.history["val_loss"]) == 2


def _trained(data, steps_per_execution: int, **run):
    """Dropout 0.5, so a random stream that differed between one step per call and N would show in the weights."""
    keras.utils.set_random_seed(7)
    model, _ = build_model(backbone="baseline_cnn", head="mlp", head_options={"units": [16], "dropout": 0.5})
    recipe = mini_recipe(steps_per_execution=steps_per_execution, **run)
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    return model, trainer, trainer.run()


def test_several_steps_per_execution_train_the_same_steps_and_count_them(data):
    """3 batches per epoch (96 images, batch 32) in calls of 2: the second call of each epoch is short.
    Both phases (the first on cached features) train the same steps, to the same weights, as one per call."""
    one_model, one, one_result = _trained(data, 1)
    model, trainer, result = _trained(data, 2)
    assert trainer.timer.steps == one.timer.steps == 2 * 3  # two phases of one 3-step epoch
    assert [r.steps for r in trainer.timer.records] == [2, 1, 2, 1]
    assert int(model.optimizer.iterations.numpy()) == int(one_model.optimizer.iterations.numpy()) == 3
    assert result.train_passes == one_result.train_passes == pytest.approx(2 * 3 * 32 / 96)
    assert result.history.keys() == one_result.history.keys()
    assert all(len(result.history[k]) == len(one_result.history[k]) == 2 for k in result.history)
    np.testing.assert_allclose(result.history["val_loss"], one_result.history["val_loss"], rtol=1e-4)
    for a, b in zip(model.get_weights(), one_model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert result.images_per_second > 0


def test_steps_per_execution_on_fixed_length_epochs(data):
    model, trainer, result = _trained(data, 4, steps_per_epoch=8)  # 8 batches of a repeating stream per epoch
    assert trainer.timer.steps == 16 and [r.steps for r in trainer.timer.records] == [4] * 4
    assert int(model.optimizer.iterations.numpy()) == 8  # the second phase's optimizer: one epoch
    assert result.train_passes == pytest.approx(16 * 32 / len(trainer.splits.y_train))
    assert len(result.history["val_loss"]) == 2


def test_budget_estimate_uses_steady_steps_not_the_first_epoch_wall_time(data):
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    recipe = mini_recipe()
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    trainer.timer.records = [Execution(True, 0.1, 0.0)] * 4  # steady steps of 0.1 s
    trainer.validation.seconds = 0.5
    assert trainer._epoch_seconds(60.0) == pytest.approx(0.1 * trainer.steps_per_epoch + 0.5)
    trainer.timer.records = []
    assert trainer._epoch_seconds(60.0) == 60.0  # nothing measured: fall back to the wall time


def test_budget_replans_when_the_machine_turns_out_faster_than_the_first_epoch_said(data, monkeypatch):
    """A first epoch timed 30x too slow (a busy machine) plans one epoch of four; the epochs after it
    run fast, so the plan grows back to the recipe's four and the cosine is stretched to end on its floor."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=2.0))
    raw["phases"] = [dict(raw["phases"][0], train="all", epochs=4, warmup_epochs=0, min_lr_fraction=0.1)]
    recipe = from_dict(Recipe, raw)
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    _first_estimate(monkeypatch, trainer, 60.0)  # 120 s left / 60 s: two epochs planned
    result = trainer.run()
    assert result.replans >= 1 and not result.budget_hit
    assert result.actual_epochs == [4] and result.planned_epochs == [4]
    # epoch 2 ended at step 6 of the 2-epoch cosine (its floor); epoch 3 at step 9 of the 4-epoch one
    # (3 steps an epoch), which then ends on its floor
    assert result.history["learning_rate"][1] == pytest.approx(1e-3 * 0.1, rel=1e-3)
    assert result.history["learning_rate"][2] == pytest.approx(1e-3 * (0.1 + 0.45 * (1 + math.cos(0.75 * math.pi))))
    assert result.history["learning_rate"][-1] == pytest.approx(1e-3 * 0.1, rel=1e-3)


def test_budget_replans_the_phase_after_a_cached_head_phase(data, monkeypatch):
    """Head-only phase 0 on cached features (fit trains the head), then the whole model: a plan cut to
    one epoch each after a slow first epoch grows back in phase 1, whose own cosine is stretched."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=2.0))
    raw["phases"][0]["epochs"] = 3
    raw["phases"][1] |= {"epochs": 3, "schedule": "cosine", "min_lr_fraction": 0.1, "early_stopping_patience": 0}
    recipe = from_dict(Recipe, raw)
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    assert trainer._cacheable(recipe.phases[0])
    _first_estimate(monkeypatch, trainer, 60.0)  # 120 s / 60 s for the 5 epochs left: [1, 1]
    result = trainer.run()
    assert result.actual_epochs == [1, 3] and result.planned_epochs == [1, 3] and result.replans >= 1
    assert result.history["learning_rate"][-1] == pytest.approx(1e-4 * 0.1, rel=1e-3)


def schedule_swap_reaches_the_step(rebuild: bool) -> bool:
    """Whether a schedule swapped in at the end of epoch 1 (a zero rate) stops the weights moving in
    epoch 2: what the re-planning relies on (``fit`` calls ``model.train_function`` anew every step, so a
    rebuilt one takes over; the traced step otherwise keeps the schedule it was traced with)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 100)), loss="mse")
    seen = {}

    class Swap(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(0.0, 100)
                if rebuild:
                    self.model.make_train_function(force=True)
                seen["weights"] = [w.copy() for w in self.model.get_weights()]

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4)).astype("float32"), rng.random((32, 1)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[Swap()])
    return all(np.array_equal(a, b) for a, b in zip(seen["weights"], model.get_weights(), strict=True))


def test_a_schedule_swapped_at_an_epoch_end_reaches_the_compiled_step_only_when_rebuilt():
    assert schedule_swap_reaches_the_step(rebuild=True)
    assert not schedule_swap_reaches_the_step(rebuild=False)


def test_budget_replanning_shrinks_and_stops_when_epochs_take_longer(data, monkeypatch):
    trainer = _budgeted(data, epochs=6)
    budget, seen = trainer.budget, []
    replan, left = budget.replan, budget.left

    def slow(index, done, epoch_seconds):  # as if every epoch after the first took 50 s
        epoch = done - 1
        seen.append(epoch)
        monkeypatch.setattr(budget, "left", lambda: left() - 50.0 * epoch)
        return replan(index, done, 50.0)

    monkeypatch.setattr(budget, "replan", slow)
    result = trainer.run()
    # the fast first epoch planned all 6; after the second, 70 s are left at 50 s an epoch: one more
    # (the plan becomes 3); after the third, 20 s: stop there, on the plan, before the deadline
    assert seen == [1, 2] and result.replans == 1
    assert result.actual_epochs == [3] and result.planned_epochs == [3] and not result.budget_hit


def test_budget_grows_a_plan_mid_way_by_two_epochs_or_more_and_at_its_end_by_one(data, monkeypatch):

    trainer = _budgeted(data, epochs=6)
    _first_estimate(monkeypatch, trainer, 30.0)  # ~119 s left / 30 s plans 4 of the 6 epochs

    budget, plans = trainer.budget, []
    replan = budget.replan

    def one_more(index, done, epoch_seconds):  # 10 s epochs, 3.5 epochs' time left after #2
        epoch = done - 1
        monkeypatch.setattr(budget, "left", lambda: 35.0 - 10.0 * (epoch - 1))
        answer = replan(index, done, 10.0)
        plans.append(list(trainer.plan))
        return answer

    monkeypatch.setattr(budget, "replan", one_more)
    result = trainer.run()
    assert plans == [[4], [4], [5], [5]]  # after epochs 2, 3 (mid-way: +1 is not enough), 4 (its end), 5
    # after epochs 2 and 3 the time left affords one epoch more than the plan of 4: not the two a rebuild
    # needs mid-plan; after epoch 4, the plan's last, one more is worth it (5); after 5, no time for more
    assert result.replans == 1 and result.actual_epochs == [5] and result.planned_epochs == [5]


def test_under_xla_the_plan_stays_the_first_epoch_s(data, monkeypatch):
    from dataclasses import replace

    from bench.train.budget import Replan

    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=2.0))
    raw["phases"] = [dict(raw["phases"][1], epochs=6)]
    recipe = from_dict(Recipe, raw)
    xla = replace(recipe, run=replace(recipe.run, jit_compile="on"))
    assert Trainer(model, xla, prepare_splits(data, xla)).budget.replanning is False
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    budget = trainer.budget
    monkeypatch.setattr(budget, "left", lambda: 100.0)
    trainer.plan[:] = [3]
    constant = recipe.phases[0]
    budget.replanning = False  # as under XLA, where a rebuild would recompile: only the stop where the plan ends
    assert budget.replan(0, 2, 1.0) == Replan(False, False, False) and trainer.plan == [3]
    assert budget.replan(0, 3, 1.0) == Replan(True, False, False)
    budget.replanning = True  # 100 s at 1 s an epoch affords all 6: the plan grows (constant rate: no rebuild)
    decision = budget.replan(0, 2, 1.0)
    assert decision == Replan(False, True, True) and trainer.plan == [6]
    assert trainer._follow_plan(constant, 0, 2, decision) is False
    cosine = PhaseConfig(epochs=6, learning_rate=1e-3, schedule="cosine", min_lr_fraction=0.1)
    trainer.plan[:] = [3]
    trainer._start_phase(cosine, 0)
    traced = model.make_train_function() or model.train_function
    decision = budget.replan(0, 2, 1.0)
    assert trainer._follow_plan(cosine, 0, 2, decision) is True and trainer.plan == [6]
    assert model.train_function is not traced  # the step rebuilt around the 6-epoch schedule
    model.optimizer.iterations.assign(3 * trainer.steps_per_epoch)  # half way: the 3-epoch one is at its floor
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3 * 0.55)


def test_checkpoints_record_the_training_time_and_a_resume_gets_what_is_left_of_the_budget(data, tmp_path):
    import json

    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=2.0))
    raw["phases"] = [dict(raw["phases"][1], epochs=3, early_stopping_patience=0)]
    recipe = from_dict(Recipe, raw)
    splits = prepare_splits(data, recipe)
    result = Trainer(model, recipe, splits, checkpoint_dir=tmp_path).run()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["next_epoch"] == 3 and 0 < state["train_seconds"] <= result.train_seconds
    # resumed after epoch 1 with the whole budget already spent: nothing more trains
    resumed = Trainer(model, recipe, splits).run(
        ResumeState.from_dict({"phase": 0, "plan": [3], "next_epoch": 1, "train_seconds": 120.0})
    )
    assert resumed.budget_hit and resumed.actual_epochs == [1] and "loss" not in resumed.history
    assert resumed.end_epoch == 1  # where the run's epochs end: its evaluation is logged after them
    # with a moment of it left: one more epoch, in which the deadline passes
    resumed = Trainer(model, recipe, splits).run(
        ResumeState.from_dict({"phase": 0, "plan": [3], "next_epoch": 1, "train_seconds": 119.9})
    )
    assert resumed.budget_hit and resumed.actual_epochs == [2] and len(resumed.history["loss"]) == 1
    assert resumed.end_epoch == 2
    assert resumed.train_seconds > 119.9  # the whole run's, not only this part's (a few seconds)


def test_a_phase_resumed_mid_way_continues_its_optimizer(data, tmp_path):
    """Step count (the schedule's position), Adam's moments and a plateau-cut rate come back from the
    epoch checkpoint; without them a resumed phase would restart its schedule."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe())
    raw["phases"] = [dict(raw["phases"][1], epochs=2, early_stopping_patience=0)]  # constant rate, 3 steps/epoch
    two = from_dict(Recipe, raw)
    splits = prepare_splits(data, two)
    Trainer(model, two, splits, checkpoint_dir=tmp_path).run()
    model.optimizer.learning_rate = 5e-5  # as ReduceLROnPlateau would have cut it: a variable, saved too
    checkpointer = checkpoints.Checkpointer(tmp_path, 0, [3])
    checkpointer.set_model(model)
    checkpointer.on_epoch_end(1)  # the checkpoint after 2 of 3 epochs
    moments = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables[2:]]
    raw["phases"][0]["epochs"] = 3
    three = from_dict(Recipe, raw)
    fresh, _ = build_model(backbone="baseline_cnn", head="linear")
    fresh.load_weights(tmp_path / "weights.weights.h5")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state == {"phase": 0, "plan": [3], "next_epoch": 2}
    trainer = Trainer(fresh, three, splits, checkpoint_dir=tmp_path)
    assert trainer._start_phase(three.phases[0], 0, ResumeState.from_dict(state)) is True
    for a, b in zip(moments, fresh.optimizer.variables[2:], strict=True):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))
    result = Trainer(fresh, three, splits, checkpoint_dir=tmp_path).run(ResumeState.from_dict(state))  # its own resume
    assert int(keras.ops.convert_to_numpy(fresh.optimizer.iterations)) == 9 and not result.optimizer_restarted
    assert float(fresh.optimizer.learning_rate) == pytest.approx(5e-5) and result.actual_epochs == [3]
    # a checkpoint of another position, or of other variables, is not restored
    assert not CheckpointFolder(tmp_path).restore_optimizer(fresh, ResumeState(0, 2, (3,)))  # now saved at 3
    other, _ = build_model(backbone="baseline_cnn", head="mlp")
    compile_phase(other, three.phases[0], steps_per_epoch=3, epochs=1, jit_compile=False)
    assert not CheckpointFolder(tmp_path).restore_optimizer(other, ResumeState(0, 3, (3,)))
    assert int(keras.ops.convert_to_numpy(other.optimizer.iterations)) == 0


def test_a_resumed_phase_continues_early_stopping_and_ends_on_its_best_epoch_before_the_break(data, tmp_path):
    """Early stopping's best value, epoch and patience and the plateau's counters are checkpointed with
    the best epoch's weights: a run split across sessions stops and restores as one run would."""

    class KilledAfterEpoch2(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe())
    raw["phases"] = [dict(raw["phases"][1], epochs=4, early_stopping_patience=2, reduce_on_plateau=True)]
    recipe = from_dict(Recipe, raw)
    splits = prepare_splits(data, recipe)
    with pytest.raises(KeyboardInterrupt):
        Trainer(model, recipe, splits, checkpoint_dir=tmp_path, callbacks=[KilledAfterEpoch2()]).run()
    state = json.loads((tmp_path / "state.json").read_text())
    stopper = state["monitors"]["early_stopping"]
    assert state["next_epoch"] == 2 and set(state["monitors"]) == {"early_stopping", "plateau"}
    assert stopper["weights_file"] == f"best-0-{stopper['best_epoch']}.weights.h5" and stopper["best_epoch"] < 2
    best, _ = build_model(backbone="baseline_cnn", head="linear")
    best.load_weights(tmp_path / stopper["weights_file"])
    # Resumed from weights unlike the best epoch's, whose loss (made unbeatable) came before the break,
    # with one epoch of patience left: it trains one epoch, stops, and ends on the best epoch's weights.
    stopper.update(best=0.0, wait=1)
    resumed, _ = build_model(backbone="baseline_cnn", head="linear")
    resumed.load_weights(tmp_path / "weights.weights.h5")
    resumed.set_weights([w + 1 for w in resumed.get_weights()])
    result = Trainer(resumed, recipe, splits, checkpoint_dir=tmp_path).run(ResumeState.from_dict(state))
    assert result.actual_epochs == [3]
    for a, b in zip(resumed.get_weights(), best.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_taken_before_the_budget_s_plan_holds_the_plan(data, tmp_path, monkeypatch):
    """Epoch 1's checkpoint is written before the plan is fitted to the budget: a run killed in epoch 2
    must resume with the fitted plan (and its schedule), not the recipe's."""
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=2.0))
    raw["phases"] = [dict(raw["phases"][1], epochs=6)]
    recipe = from_dict(Recipe, raw)
    trainer = Trainer(model, recipe, prepare_splits(data, recipe), checkpoint_dir=tmp_path)
    monkeypatch.setattr(trainer, "_epoch_seconds", lambda wall: 40.0)  # ~120 s / 40 s: 1 + 2 epochs
    original = trainer._fit

    def killed_after_calibration(*args, replan=True):
        if replan:
            raise KeyboardInterrupt
        return original(*args, replan=replan)

    monkeypatch.setattr(trainer, "_fit", killed_after_calibration)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["plan"] == trainer.plan == [3] and state["next_epoch"] == 1


@pytest.mark.parametrize("jit, deadline, plan", [(False, 100.0, [8]), (True, 100.0, [6]), (True, 1000.0, [20])])
def test_calibration_under_xla_sets_the_recompile_against_the_budget(data, monkeypatch, jit, deadline, plan):
    """A plan that changes rebuilds the training step around its schedule: under XLA that is another
    compile, about what the first epoch spent beyond a steady epoch, so the plan leaves room for it. A plan
    that does not change keeps its compiled step."""
    import time

    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=2.0))
    raw["phases"] = [dict(raw["phases"][1], epochs=20)]
    recipe = from_dict(Recipe, raw)
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    trainer._start_phase(recipe.phases[0], 0)
    model.make_train_function()
    traced = model.train_function
    trainer.jit = jit
    clock = iter([0.0, 30.0])  # epoch 1 from 0 to 30 s: 10 s of steady epoch, 20 s of compiling
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(trainer.budget, "left", lambda: deadline - 30.0)  # the deadline, seen at 30 s
    monkeypatch.setattr(trainer, "_fit", lambda *args, **kwargs: (keras.callbacks.History(), False))
    monkeypatch.setattr(trainer, "_merge", lambda result, hist: None)
    monkeypatch.setattr(trainer, "_epoch_seconds", lambda wall: 10.0)
    trainer._calibrate(recipe.phases[0], None)
    # 70 s left at 10 s an epoch: 1 + 7 epochs; under XLA 70 - 20 s of recompiling: 1 + 5; 970 s: all 20
    assert trainer.plan == plan
    assert (model.train_function is traced) == (plan == [20]) and traced is not None


def _head_phase_weights(data, cache: bool):
    """Head weights after 2 epochs of a head-only, unaugmented phase (6 steps), from the same start."""
    keras.utils.set_random_seed(5)
    model, _ = build_model(backbone="baseline_cnn", head="mlp", head_options={"units": [16], "dropout": 0.0})
    raw = _raw(mini_recipe(cache_features=cache))
    raw["phases"] = [dict(raw["phases"][0], epochs=2, early_stopping_patience=0)]
    recipe = from_dict(Recipe, raw)
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    start = model.head.get_weights()[0]
    result = trainer.run()
    assert not np.allclose(model.head.get_weights()[0], start)  # the head did train
    return model.head.get_weights(), model.backbone.get_weights(), result


def test_cached_features_train_the_head_exactly_like_the_full_model(data):
    cached_head, cached_backbone, cached = _head_phase_weights(data, cache=True)
    plain_head, plain_backbone, plain = _head_phase_weights(data, cache=False)
    for a, b in zip(cached_head, plain_head, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(cached_backbone, plain_backbone, strict=True):
        assert np.array_equal(a, b)  # frozen in both
    np.testing.assert_allclose(cached.history["val_loss"], plain.history["val_loss"], rtol=1e-4)


def test_feature_cache_is_used_only_for_unaugmented_head_phases(data):
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    recipe = mini_recipe()
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    head_phase, all_phase = recipe.phases
    assert trainer._cacheable(head_phase) and not trainer._cacheable(all_phase)
    assert not trainer._cacheable(PhaseConfig(train="head", augment=True))
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype("float32")
    features = model.features([x], training=False)
    np.testing.assert_allclose(model.head(features, training=False), model(x, training=False), atol=1e-6)


def test_progress_reports_every_epoch_with_position_and_eta(data):
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    recipe = mini_recipe()
    statuses = []
    Trainer(model, recipe, prepare_splits(data, recipe), progress=statuses.append).run()
    ends = [s for s in statuses if s["epoch_end"]]
    assert [(s["phase"], s["epoch"], s["epochs"]) for s in ends] == [("head", 1, 2), ("all", 2, 2)]
    assert ends[-1]["eta"] == 0 and ends[0]["eta"] > 0 and ends[-1]["elapsed"] >= ends[0]["elapsed"]
    assert all(0 <= s["val_macro_f1"] <= 1 and s["loss"] > 0 for s in ends)


def test_passes_count_the_images_seen_when_the_split_is_smaller_than_a_batch(data):
    """20 training faces and batch 32: each epoch is one 20-image batch, i.e. one pass (not 32/20)."""
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe())
    raw["data"]["max_train"] = 20
    raw["phases"] = [dict(raw["phases"][1], epochs=2, early_stopping_patience=0)]
    recipe = from_dict(Recipe, raw)
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    result = trainer.run()
    assert trainer.steps_per_epoch == 1 and len(trainer.splits.y_train) < 32
    assert result.train_passes == pytest.approx(2.0)


def test_fit_builds_the_model_the_recipe_names_and_trains_it(data):
    """bench run, every tune trial and tune --final train through Fit: the recipe alone says what."""
    from dataclasses import replace

    from bench.train import Fit

    recipe = mini_recipe()
    recipe = replace(recipe, model=replace(recipe.model, backbone="baseline_cnn", head="linear"))
    fit = Fit.build(recipe, data)
    assert fit.model.name == "baseline_cnn__linear" and fit.spec.image_size == 48
    assert len(fit.splits.y_train) == 96 and fit.precision in ("float32", "mixed_float16")
    result = fit.train()
    assert result.actual_epochs == [1, 1] and result.model is fit.model


def test_a_resumed_run_keeps_one_phase_start_per_phase(data):
    """phase_starts[i] is phase i's start also when a resume begins in a later phase: the training curves
    name phases by position."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    recipe = mini_recipe()
    result = Trainer(model, recipe, prepare_splits(data, recipe)).run(
        ResumeState.from_dict({"phase": 1, "plan": [1, 1], "next_epoch": 1})
    )
    assert result.phase_starts == [0, 1] and result.history["epoch"] == [1]
    assert result.history["learning_rate"] == [pytest.approx(1e-4)]


@pytest.mark.parametrize("momentum, expected", [(0.0, 0.9), (0.99, 0.99)])
def test_recipe_batchnorm_momentum_reaches_every_backbone_batchnorm(momentum, expected):
    """0 keeps the backbone's own from-scratch momentum (0.9); a value sets every BatchNorm layer's."""
    from bench.train.build import build_for_recipe

    recipe = load_recipe("smoke", ["model.backbone=baseline_cnn", f"model.batchnorm_momentum={momentum}"])
    model, _, _ = build_for_recipe(recipe)
    found = [layer.momentum for layer in model.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert found and all(m == pytest.approx(expected) for m in found)


def test_recipe_fused_batchnorm_reaches_the_backbone_with_the_recipe_momentum():
    """model.batchnorm = "fused" swaps every backbone BatchNorm; batchnorm_momentum still applies to them."""
    from bench.batchnorm import FusedBatchNormalization
    from bench.train.build import build_for_recipe

    recipe = load_recipe(
        "smoke", ["model.backbone=baseline_cnn", 'model.batchnorm="fused"', "model.batchnorm_momentum=0.99"]
    )
    model, _, _ = build_for_recipe(recipe)
    found = [layer for layer in model.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert found and all(isinstance(layer, FusedBatchNormalization) for layer in found)
    assert all(layer.momentum == pytest.approx(0.99) for layer in found)


@pytest.mark.parametrize("stats", ["moving", "recomputed"])
def test_batchnorm_stats_recomputed_after_training_on_the_clean_training_images(data, stats):
    """recomputed: after the last phase the backbone's BatchNorm statistics are those of the un-augmented
    training split (recomputing again changes nothing); moving: the trained moving averages stay."""
    from dataclasses import replace

    from bench.batchnorm import recompute_statistics
    from bench.train import Fit

    recipe = mini_recipe()
    recipe = replace(recipe, model=replace(recipe.model, backbone="baseline_cnn", head="linear", batchnorm_stats=stats))
    fit = Fit.build(recipe, data)
    result = fit.train()
    norms = [layer for layer in fit.model.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    kept = [keras.ops.convert_to_numpy(layer.moving_variance).copy() for layer in norms]
    assert recompute_statistics(fit.model, fit.splits.x_train, seed=recipe.run.seed) == len(norms) > 0
    again = [keras.ops.convert_to_numpy(layer.moving_variance) for layer in norms]
    same = all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(kept, again, strict=True))
    assert same == (stats == "recomputed")
    assert result.batchnorm_recomputed == (len(norms) if stats == "recomputed" else 0)
    assert (result.batchnorm_seconds > 0) == (stats == "recomputed")


def test_a_resumed_run_with_nothing_left_recomputes_only_what_its_last_phase_trained(data):
    """Resumed with its budget spent, a run starts no phase; the fresh model it was given has every layer
    trainable, but its last phase trained the head only, so the backbone's statistics stay as loaded."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    raw = _raw(mini_recipe(budget_minutes=2.0))
    raw["phases"] = [dict(raw["phases"][0], epochs=3)]  # head only
    raw["model"]["batchnorm_stats"] = "recomputed"
    recipe = from_dict(Recipe, raw)
    norms = [layer for layer in model.backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    loaded = [keras.ops.convert_to_numpy(layer.moving_mean).copy() for layer in norms]
    result = Trainer(model, recipe, prepare_splits(data, recipe)).run(
        ResumeState.from_dict({"phase": 0, "plan": [3], "next_epoch": 1, "train_seconds": 120.0})
    )
    assert result.budget_hit and result.batchnorm_recomputed == 0
    for layer, before in zip(norms, loaded, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), before)
