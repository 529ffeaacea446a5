"""bench's Keras callbacks, driven by hand: what they count when Keras calls them once per N steps."""

import keras
import numpy as np
import pytest

from bench import callbacks
from bench.callbacks import (
    SATURATED_LOSS,
    Execution,
    NanGuard,
    Progress,
    Replanner,
    StepTimer,
    TrainingDiverged,
    call_end,
)
from bench.train import checkpoints
from bench.train.budget import Replan

# The index Keras passes to on_train_batch_end for a call of N steps that began at ``first``:
# older Keras 3 releases pass ``first`` again, Keras 3.15 passes first + N - 1 (past a short last call's end).
END_INDEX = {
    "older Keras 3": lambda first, per_call: first,
    "Keras 3.15": lambda first, per_call: first + per_call - 1,
}


def _epoch(callback, steps: int, per_call: int, end_index=END_INDEX["Keras 3.15"], loss: float = 1.0) -> None:
    """Call the batch hooks as Keras does with ``steps_per_execution=per_call``: the first step's index at
    the start, ``end_index(first, per_call)`` at the end."""
    callback.set_params({"epochs": 1, "steps": steps, "verbose": 0})
    callback.on_epoch_begin(0)
    for first in range(0, steps, per_call):
        callback.on_train_batch_begin(first)
        callback.on_train_batch_end(end_index(first, per_call), {"loss": loss})


def test_call_end_is_clamped_to_the_epoch():
    assert [call_end(first, 4, 10) for first in (0, 4, 8)] == [4, 8, 10]
    assert call_end(8, 4, None) == 12 and call_end(3, 1, 10) == 4


@pytest.mark.parametrize("end_index", END_INDEX.values(), ids=END_INDEX.keys())
def test_step_timer_counts_every_step_of_a_multi_step_call_and_skips_warm_up_calls(end_index):
    timer = StepTimer(batch_size=8, warmup=3, steps_per_execution=4)
    _epoch(timer, steps=10, per_call=4, end_index=end_index)
    assert [(r.steady, r.steps) for r in timer.records] == [(False, 4), (True, 4), (True, 2)]
    assert timer.steps == 10
    _epoch(timer, steps=10, per_call=4, end_index=end_index)  # a second epoch: its first call is warm-up again
    assert [r.steady for r in timer.records[3:]] == [False, True, True] and timer.steps == 20


def test_step_timer_rates_are_per_step_not_per_call():
    timer = StepTimer(batch_size=8, steps_per_execution=4)
    timer.records = [Execution(False, 9.0, 0.0, 4), Execution(True, 0.4, 0.1, 4), Execution(True, 0.2, 0.05, 2)]
    assert timer.seconds_per_step == pytest.approx(0.75 / 6)
    assert timer.images_per_second == pytest.approx(8 * 6 / 0.75)
    assert timer.input_wait_fraction == pytest.approx(0.15 / 0.75)


def test_step_timer_s_recent_rate_follows_the_latest_steps():
    timer = StepTimer(32)
    timer.records = [Execution(True, 0.5, 0.0)] * 4 + [Execution(False, 9.0, 0.0)] + [Execution(True, 0.1, 0.1)] * 3
    assert timer.recent_seconds_per_step(3) == pytest.approx(0.2)  # the last three steps, input wait included
    assert timer.recent_seconds_per_step(4) == pytest.approx(0.2)  # the warm-up call among them does not count
    assert timer.recent_seconds_per_step(100) == pytest.approx((4 * 0.5 + 3 * 0.2) / 7)
    assert StepTimer(32).recent_seconds_per_step(3) != StepTimer(32).recent_seconds_per_step(3)  # NaN


def test_step_timer_with_one_step_per_call_and_no_known_epoch_length():
    timer = StepTimer(batch_size=4, warmup=1)
    timer.on_epoch_begin(0)
    for step in range(3):
        timer.on_train_batch_begin(step)
        timer.on_train_batch_end(step)
    assert [(r.steady, r.steps) for r in timer.records] == [(False, 1), (True, 1), (True, 1)]


@pytest.mark.parametrize("end_index", END_INDEX.values(), ids=END_INDEX.keys())
@pytest.mark.parametrize("per_call, expected", [(4, [4, 8, 10]), (1, list(range(1, 11)))])
def test_progress_reports_where_each_call_ended_never_past_the_epoch_end(end_index, per_call, expected):
    statuses = []
    timer = StepTimer(batch_size=8, steps_per_execution=per_call)
    progress = Progress(
        statuses.append, phase="p", epochs=1, steps=10, timer=timer, start=0.0, every=0.0, steps_per_execution=per_call
    )
    _epoch(progress, steps=10, per_call=per_call, end_index=end_index)
    assert [s["step"] for s in statuses] == expected


@pytest.mark.parametrize("end_index", END_INDEX.values(), ids=END_INDEX.keys())
def test_nan_guard_names_the_call_that_diverged(end_index):
    with pytest.raises(TrainingDiverged, match="became nan in the training call ending at step 4 of the epoch; lower"):
        _epoch(NanGuard(steps_per_execution=4), steps=10, per_call=4, end_index=end_index, loss=float("nan"))
    guard = NanGuard(steps_per_execution=4)
    guard.set_params({"epochs": 1, "steps": 10})
    guard.on_train_batch_begin(8)
    with pytest.raises(TrainingDiverged, match="ending at step 10 of the epoch"):  # a short last call
        guard.on_train_batch_end(end_index(8, 4), {"loss": float("inf")})
    with pytest.raises(TrainingDiverged, match="became nan at batch 0; lower"):
        _epoch(NanGuard(), steps=10, per_call=1, end_index=end_index, loss=float("nan"))


def test_nan_guard_stops_an_epoch_saturated_at_the_clipped_loss_and_passes_a_bad_but_learning_one():
    guard = NanGuard()
    guard.on_epoch_end(0, {"loss": 9.0})  # far worse than chance (about 2), yet not saturated: no error
    guard.on_epoch_end(1, {"loss": SATURATED_LOSS})
    with pytest.raises(TrainingDiverged, match="averaged 16.1 over epoch 3, the clipped maximum.*lower the learning"):
        guard.on_epoch_end(2, {"loss": 16.118})  # what PyTorch's SGD at 1e5 logged, epoch after epoch
    # Weight penalties are part of Keras' loss but not bounded by the clip: only the data term counts.
    dense = keras.layers.Dense(2, kernel_initializer="ones", kernel_regularizer=keras.regularizers.L2(2.0))
    model = keras.Sequential([keras.Input((4,)), dense])
    penalty = float(sum(keras.ops.convert_to_numpy(p) for p in model.losses))
    assert penalty == pytest.approx(16.0)  # 2.0 * eight weights of 1
    guard.set_model(model)
    guard.on_epoch_end(3, {"loss": 2.0 + penalty})
    with pytest.raises(TrainingDiverged, match="averaged 16.1 over epoch 5"):
        guard.on_epoch_end(4, {"loss": 16.118 + penalty})


class _Model:
    stop_training = False


def test_replanner_times_whole_epochs_skips_traced_ones_and_stops_when_told(monkeypatch):
    """Epochs of 10, 20, 30, 40 and 50 s by a fake clock. The first epoch of a fit (tracing) is not
    timed but stands in until one is; the epoch after a retrace is not timed either; the mean covers
    the last two timed epochs."""
    clock = iter([0.0, 10.0, 10.0, 30.0, 30.0, 60.0, 60.0, 100.0, 100.0, 150.0, 150.0])
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    asked = []

    class Budget:
        def replan(self, phase, done, seconds):
            epoch = done - 1  # a phase that began at epoch 0
            asked.append((epoch, seconds))
            return Replan(stop=epoch == 4, replanned=epoch == 2, resized=epoch == 2)  # stop after epoch 4

    # the plan resized after epoch 2: the trainer rebuilds the graph, so the next epoch is not timed
    replanner = Replanner(Budget(), 0, 0, follow=lambda done, decision: decision.resized, window=2)
    replanner.set_model(_Model())
    replanner.on_train_begin()
    for epoch in range(5):
        replanner.on_epoch_end(epoch)
        assert replanner.model.stop_training == (epoch == 4)
    # epoch 0 (10 s) untimed: its own wall; 1 timed (20); 2 timed (30); 3 after the retrace, untimed;
    # 4 timed (50): the mean of 30 and 50
    assert asked == [(0, 10.0), (1, 20.0), (2, 25.0), (3, 25.0), (4, 40.0)]


def test_checkpoints_name_the_best_epoch_s_file_and_a_finished_phase_resumes_with_the_next(tmp_path):
    """The state names the best epoch's weights file (written before it, older ones removed after it);
    once early stopping ends the phase and restores its best epoch, the checkpoint holds those weights
    and the next phase's first epoch as its position."""
    import json

    from bench.monitors import ResumableEarlyStopping

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.optimizer.build(model.trainable_variables)
    stopper = ResumableEarlyStopping(patience=1, restore_best_weights=True)
    checkpointer = checkpoints.Checkpointer(tmp_path, 0, [5, 3], monitors={"early_stopping": stopper})
    for callback in (stopper, checkpointer):
        callback.set_model(model)
        callback.on_train_begin()

    def epoch(index, val_loss):
        model.set_weights([w + 1 for w in model.get_weights()])  # a step of training
        stopper.on_epoch_end(index, {"val_loss": val_loss})
        checkpointer.on_epoch_end(index)
        return json.loads((tmp_path / "state.json").read_text())

    assert epoch(0, 0.6)["monitors"]["early_stopping"]["weights_file"] == "best-0-0.weights.h5"
    state = epoch(1, 0.5)  # better: its file replaces epoch 0's
    assert state["monitors"]["early_stopping"]["weights_file"] == "best-0-1.weights.h5"
    assert sorted(p.name for p in tmp_path.glob("best-*")) == ["best-0-1.weights.h5"]
    best = model.get_weights()
    state = epoch(2, 0.7)  # worse, and patience 1 is spent: early stopping ends the phase
    assert model.stop_training and state["next_epoch"] == 3
    assert state["monitors"]["early_stopping"]["weights_file"] == "best-0-1.weights.h5"
    stopper.on_train_end()  # restores epoch 1; the checkpoint follows it
    checkpointer.on_train_end()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["next_epoch"] == 5  # phase 1's first epoch
    model.set_weights([w * 0 for w in best])
    model.load_weights(tmp_path / "weights.weights.h5")
    for a, b in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(a, b)


class _Predictor:
    """What ValidationMetrics asks of a model: its jit_compile flag, predict and predict_on_batch."""

    def __init__(self, jit_compile: bool, probs: np.ndarray):
        self.jit_compile, self.probs, self.calls = jit_compile, probs, []

    def predict_on_batch(self, x):
        self.calls.append(("one batch", len(x)))

    def predict(self, stream, verbose=0):
        self.calls.append(("pass", len(stream)))
        return self.probs


@pytest.mark.parametrize("stream_kind", ["ArrayBatches", "make_stream"])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_validation_compiles_its_prediction_step_before_the_first_timed_pass_only_under_xla(jit_compile, stream_kind):
    """Under XLA the first pass would time the compiler too, and a budget's plan reads that time as every
    validation's; with a padded last batch the extra rows are dropped. make_stream is tf.data under
    TensorFlow."""
    from bench.data.batches import ArrayBatches, make_stream

    y, x = np.array([0, 1, 2, 1, 0]), np.zeros((5, 48, 48), np.uint8)
    if stream_kind == "ArrayBatches":
        stream = ArrayBatches(x, y, batch_size=4, inputs_only=True, pad_last=True)
    else:
        stream = make_stream(x, y, batch_size=4, inputs_only=True)
    model = _Predictor(jit_compile, np.eye(7, dtype=np.float32)[[0, 1, 2, 1, 0, 6, 6, 6]])
    validation = callbacks.ValidationMetrics(stream, y)
    validation.set_model(model)
    validation.on_train_begin()
    for epoch in range(2):
        logs = {}
        validation.on_epoch_end(epoch, logs)
        # every face right, but macro-F1 averages all seven labels as evaluation does: four are absent
        assert logs["val_accuracy"] == 1.0 and logs["val_macro_f1"] == pytest.approx(3 / 7)
    warm_up = [("one batch", 4)] if jit_compile else []
    assert model.calls == [*warm_up, ("pass", 2), ("pass", 2)]


def test_deadline_asks_the_budget_and_stops_at_the_end_of_the_epoch_it_passed_in():
    class Budget:
        passed_after = 2

        def passed(self):
            return self.passed_after <= 0

    budget = Budget()
    deadline = callbacks.Deadline(budget)
    deadline.set_model(_Model())
    for epoch in range(3):
        budget.passed_after -= 1
        deadline.on_epoch_end(epoch)
        assert deadline.hit == deadline.model.stop_training == (epoch >= 1)
