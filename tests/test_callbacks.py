"""bench's Keras callbacks, driven by hand: what they count when Keras calls them once per N steps."""

import pytest

from bench.callbacks import Execution, Progress, StepTimer


def _epoch(callback, steps: int, per_call: int) -> None:
    """Call the batch hooks as Keras 3.15 does with ``steps_per_execution=per_call``: the first step's
    index at the start, first + per_call - 1 at the end (past the epoch's end for a short last call)."""
    callback.set_params({"epochs": 1, "steps": steps, "verbose": 0})
    callback.on_epoch_begin(0)
    for first in range(0, steps, per_call):
        callback.on_train_batch_begin(first)
        callback.on_train_batch_end(first + per_call - 1, {"loss": 1.0})


def test_step_timer_counts_every_step_of_a_multi_step_call_and_skips_warm_up_calls():
    timer = StepTimer(batch_size=8, warmup=3, steps_per_execution=4)
    _epoch(timer, steps=10, per_call=4)
    assert [(r.steady, r.steps) for r in timer.records] == [(False, 4), (True, 4), (True, 2)]
    assert timer.steps == 10
    _epoch(timer, steps=10, per_call=4)  # a second epoch: its first call is warm-up again
    assert [r.steady for r in timer.records[3:]] == [False, True, True] and timer.steps == 20


def test_step_timer_rates_are_per_step_not_per_call():
    timer = StepTimer(batch_size=8, steps_per_execution=4)
    timer.records = [Execution(False, 9.0, 0.0, 4), Execution(True, 0.4, 0.1, 4), Execution(True, 0.2, 0.05, 2)]
    assert timer.seconds_per_step == pytest.approx(0.75 / 6)
    assert timer.images_per_second == pytest.approx(8 * 6 / 0.75)
    assert timer.input_wait_fraction == pytest.approx(0.15 / 0.75)


def test_step_timer_with_one_step_per_call_and_no_known_epoch_length():
    timer = StepTimer(batch_size=4, warmup=1)
    timer.on_epoch_begin(0)
    for step in range(3):
        timer.on_train_batch_begin(step)
        timer.on_train_batch_end(step)
    assert [(r.steady, r.steps) for r in timer.records] == [(False, 1), (True, 1), (True, 1)]


def test_progress_never_reports_a_step_past_the_epoch_end():
    statuses = []
    timer = StepTimer(batch_size=8, steps_per_execution=4)
    progress = Progress(statuses.append, phase="p", epochs=1, steps=10, timer=timer, start=0.0, every=0.0)
    _epoch(progress, steps=10, per_call=4)
    assert [s["step"] for s in statuses] == [4, 8, 10]
