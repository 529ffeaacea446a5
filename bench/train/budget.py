"""The wall-clock budget of one run (``run.budget_minutes``) as one object: the run's training clock
(resumed parts included), its deadline, and the epoch plan fitted to the machine's speed, after the first
epoch and again at every epoch end.

Why one object: the budget was state shared by the trainer, a callback that reached into the trainer,
the plan function and the checkpoints. Here it has one owner, the trainer, and the others only ask it:
:class:`bench.callbacks.Deadline` whether the deadline passed, :class:`bench.callbacks.Replanner` for the
plan after an epoch, the epoch checkpoints how much time is spent. ``replanning`` is the public switch that
keeps the plan the first epoch's (as under XLA, where a rebuilt step costs tens of seconds)."""

from __future__ import annotations

import time
from typing import NamedTuple

from bench.train.optim import fit_plan

REPLAN_MIN_EPOCHS = 2
"""The fewest epochs a budgeted run's plan grows by mid-way when re-planned (or 10 % of those left, if
more); at the plan's last epoch, one is enough."""


class Replan(NamedTuple):
    """What :meth:`Budget.replan` decided at an epoch end."""

    stop: bool  # the phase's plan ends with this epoch
    replanned: bool  # the plan changed (this phase's epochs or a later one's)
    resized: bool  # this phase's epochs changed: a schedule over the phase must follow


class Budget:
    """A run's training clock and, with ``minutes`` > 0, its deadline and epoch plan.

    Args:
        minutes: the budget (``run.budget_minutes``); 0 for none (the clock still runs).
        epochs: the recipe's epochs per phase: a plan never grows past them.
        replanning: re-fit the plan at every epoch end (False: keep the first epoch's plan).

    The plan (:attr:`plan`, epochs per phase) is one list for the whole run: re-planning changes it in
    place, and the trainer's loop and the epoch checkpoints read it.
    """

    def __init__(self, minutes: float, epochs: list[int], *, replanning: bool = True):
        self.seconds = float(minutes) * 60
        self.epochs = list(epochs)
        self.replanning = replanning
        self.plan = list(epochs)
        self.replans = 0  # times the plan was re-fitted after the first epoch
        self.spent_before = 0.0
        self.started = time.perf_counter()

    def start(self, plan: list[int] | tuple[int, ...] | None = None, spent_before: float = 0.0) -> None:
        """Start the clock: a fresh run from the recipe's plan, a resumed one from its checkpoint's plan
        with the training time it already spent (its budget continues, it does not start again)."""
        self.plan = list(plan) if plan is not None else list(self.epochs)
        self.spent_before, self.started, self.replans = float(spent_before), time.perf_counter(), 0

    @property
    def limited(self) -> bool:
        """Whether the run has a budget at all."""
        return self.seconds > 0

    @property
    def deadline(self) -> float | None:
        """The ``time.perf_counter()`` time training must end by; None without a budget."""
        return self.started + self.seconds - self.spent_before if self.limited else None

    def spent(self) -> float:
        """Training seconds spent so far, the parts before a resume included."""
        return self.spent_before + time.perf_counter() - self.started

    def spent_at_start(self) -> bool:
        """Whether a resumed run's budget was already spent: nothing is left to train."""
        return self.limited and self.spent_before >= self.seconds

    def passed(self) -> bool:
        """Whether the deadline has passed."""
        return self.limited and time.perf_counter() >= self.deadline

    def left(self) -> float:
        """Seconds to the deadline."""
        return self.deadline - time.perf_counter()

    def cap(self, index: int) -> int:
        """The most epochs phase ``index`` may run: under a budget the plan may grow back to the recipe's
        epochs (the Replanner then stops training where the plan ends)."""
        return max(self.plan[index], self.epochs[index]) if self.limited else self.plan[index]

    def calibrate(self, epoch_seconds: float, wall: float, recompiles: bool) -> bool:
        """After the first epoch (``wall`` seconds, ``epoch_seconds`` what one more will cost): shrink the
        plan so every phase fits; whether the first phase's epochs changed. ``recompiles``: a new schedule
        needs a new step, a compile as long as epoch 1's was, so the plan leaves time for it."""
        left = self.left()
        plan = fit_plan(self.epochs, 0, 1, epoch_seconds, left)
        if plan[0] != self.plan[0] and recompiles:
            plan = fit_plan(self.epochs, 0, 1, epoch_seconds, left - max(0.0, wall - epoch_seconds))
        changed = plan[0] != self.plan[0]
        self.plan[:] = plan
        return changed

    def replan(self, index: int, done: int, epoch_seconds: float) -> Replan:
        """After ``done`` epochs of phase ``index``: re-fit the remaining plan to ``epoch_seconds`` per epoch
        and the time left.

        A plan that no longer fits shrinks at once (the deadline would otherwise cut a schedule before its
        low end); one that could grow grows only when that gains :data:`REPLAN_MIN_EPOCHS` epochs or 10 %
        of those left, whichever is more, so timing noise does not rebuild the training graph every epoch
        (at the plan's last epoch, any epoch more is worth a rebuild). Without ``replanning`` the plan stays
        as it is and only says where the phase stops."""
        if not self.replanning:
            return Replan(done >= self.plan[index], False, False)
        new = self.plan[:index] + fit_plan(self.epochs, index, done, epoch_seconds, self.left())[index:]
        left, new_left = sum(self.plan[index:]) - done, sum(new[index:]) - done
        least_growth = 1 if left <= 0 else max(REPLAN_MIN_EPOCHS, 0.1 * left)
        if not (new_left < left or new_left - left >= least_growth):
            return Replan(done >= self.plan[index], False, False)
        self.replans += 1
        resized = new[index] != self.plan[index]
        self.plan[:] = new
        return Replan(done >= self.plan[index], True, resized)
