"""The wall-clock budget: the run's clock, its deadline and the epoch plan it re-fits."""

import time

import pytest

from bench.train.budget import Budget, Replan


def test_without_minutes_the_clock_runs_but_nothing_is_limited():
    budget = Budget(0, [3, 2])
    budget.start()
    assert not budget.limited and budget.deadline is None and not budget.passed()
    assert budget.cap(0) == 3 and not budget.spent_at_start() and budget.spent() >= 0


def test_a_resumed_run_continues_its_plan_and_its_budget():
    budget = Budget(2.0, [6, 2])
    budget.start((4, 2), spent_before=100.0)
    assert budget.plan == [4, 2] and budget.cap(0) == 6  # the plan may grow back to the recipe's epochs
    assert budget.deadline == pytest.approx(budget.started + 20.0) and budget.spent() >= 100.0
    assert not budget.spent_at_start()
    budget.start((4, 2), spent_before=120.0)
    assert budget.spent_at_start() and budget.passed()


def test_calibration_shrinks_the_plan_to_the_time_left_and_says_whether_the_first_phase_changed(monkeypatch):
    budget = Budget(2.0, [30])
    budget.start()
    monkeypatch.setattr(budget, "left", lambda: 600.0)
    assert budget.calibrate(60.0, 60.0, recompiles=False) and budget.plan == [11]  # bench.train.optim.fit_plan
    budget.start()
    # under XLA a new schedule costs a compile as long as the first epoch's extra time (here 120 s)
    assert budget.calibrate(60.0, 180.0, recompiles=True) and budget.plan == [9]
    budget.start()
    monkeypatch.setattr(budget, "left", lambda: 10_000.0)
    assert not budget.calibrate(60.0, 60.0, recompiles=False) and budget.plan == [30]


def test_replan_shrinks_at_once_grows_only_by_enough_and_counts_its_replans(monkeypatch):
    budget = Budget(10.0, [10])
    budget.start([4])
    monkeypatch.setattr(budget, "left", lambda: 5.5)  # 5 more epochs of 1 s: 2 done + 5 = 7 > 4 by 3 >= 2
    assert budget.replan(0, 2, 1.0) == Replan(False, True, True) and budget.plan == [7] and budget.replans == 1
    monkeypatch.setattr(budget, "left", lambda: 5.5)  # one epoch more than the plan: not enough mid-way
    assert budget.replan(0, 3, 1.0) == Replan(False, False, False) and budget.plan == [7]
    monkeypatch.setattr(budget, "left", lambda: 1.5)  # slower now: shrink at once, stop here
    assert budget.replan(0, 4, 1.0) == Replan(False, True, True) and budget.plan == [5]
    assert budget.replan(0, 5, 10.0) == Replan(True, False, False) and budget.replans == 2


def test_without_replanning_the_plan_only_says_where_the_phase_stops(monkeypatch):
    budget = Budget(10.0, [10], replanning=False)
    budget.start([3])
    monkeypatch.setattr(budget, "left", lambda: 1000.0)
    assert budget.replan(0, 2, 1.0) == Replan(False, False, False)
    assert budget.replan(0, 3, 1.0) == Replan(True, False, False) and budget.plan == [3] and budget.replans == 0


def test_the_deadline_passes(monkeypatch):
    budget = Budget(1 / 60, [1])  # one second
    budget.start()
    assert not budget.passed()
    now = time.perf_counter()
    monkeypatch.setattr(time, "perf_counter", lambda: now + 2.0)
    assert budget.passed() and budget.left() < 0
