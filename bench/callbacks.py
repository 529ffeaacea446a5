"""Keras callbacks the trainer uses: validation macro-F1, learning rate, NaN guard, step timing, budget,
progress. The epoch checkpoints are :mod:`bench.train.checkpoints`."""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import keras
import numpy as np

from bench.errors import BenchError
from bench.metrics import macro_f1
from bench.run_record import VAL_MACRO_F1


class TrainingDiverged(BenchError):
    """The loss became NaN or infinite, or sat at cross-entropy's clipped maximum for an epoch."""


# Keras clips probabilities at its epsilon (1e-7), so cross-entropy never passes -log(1e-7) = 16.1. An epoch's
# mean training loss above 80 % of that means nearly every face got a probability near 1e-7 for its own
# class: a saturated, diverged model. Untrained models start near log(classes), about 2, class weights
# scaling it by their mean (about 1); none of this project's runs has come near 13.
SATURATED_LOSS = 0.8 * -math.log(keras.config.epsilon())


class ValidationMetrics(keras.callbacks.Callback):
    """Adds ``val_loss``, ``val_accuracy`` and ``val_macro_f1`` to each epoch's logs from one prediction
    pass over the (never augmented) validation set.

    One pass instead of Keras' ``validation_data`` evaluation plus a second pass for macro-F1. The
    loss is plain cross-entropy without label smoothing or class weights, so epochs and recipes with
    different smoothing compare on the same scale.
    """

    def __init__(self, val_dataset, y_val: np.ndarray):
        super().__init__()
        self.val_dataset, self.y_val = val_dataset, y_val
        self.seconds = 0.0  # duration of the latest validation pass (the budget estimate needs it)

    def on_train_begin(self, logs=None):
        """Under XLA, predict one batch before the first timed pass of each ``fit`` (a phase's compile
        resets the prediction step), which would otherwise time the compiler too: on an H200 compiling
        took seconds to tens of seconds per step against well under a second for a validation pass, and a
        budget's plan reads ``seconds`` as what every validation costs (benchmarks/RESULTS.md#gpu-check)."""
        if not self.model.jit_compile:
            return
        if isinstance(self.val_dataset, keras.utils.PyDataset):
            batch = self.val_dataset[0] if len(self.val_dataset) else None
        else:  # a tf.data stream
            batch = next(iter(self.val_dataset.take(1)), None)
        if batch is not None:
            self.model.predict_on_batch(batch)

    def on_epoch_end(self, epoch, logs=None):
        tic = time.perf_counter()
        probs = self.model.predict(self.val_dataset, verbose=0)[: len(self.y_val)]  # a padded last batch's rows
        self.seconds = time.perf_counter() - tic
        picked = np.clip(probs[np.arange(len(self.y_val)), self.y_val], 1e-7, 1.0)
        logs["val_loss"] = float(-np.mean(np.log(picked)))
        logs["val_accuracy"] = float(np.mean(probs.argmax(1) == self.y_val))
        logs[VAL_MACRO_F1] = macro_f1(self.y_val, probs.argmax(1), probs.shape[-1])


def call_end(first: int, steps_per_execution: int, epoch_steps: int | None) -> int:
    """The epoch step (1-based) at which a training call that began at step index ``first`` ends.

    ``first + steps_per_execution``, clamped to the epoch's length ``epoch_steps`` (None: unknown) for a
    short last call. Computed from the begin hook's index because the end hook's differs between Keras 3
    releases when ``steps_per_execution`` > 1: older ones pass the first step again, Keras 3.15 passes
    first + N - 1, past the epoch's end for a short last call."""
    end = first + steps_per_execution
    return min(end, epoch_steps) if epoch_steps else end


class NanGuard(keras.callbacks.Callback):
    """Raises :class:`TrainingDiverged` as soon as the training loss is NaN or infinite, and at the end of
    an epoch whose mean training loss is above :data:`SATURATED_LOSS`.

    The second check is for backends whose diverged models stay finite: under PyTorch, SGD at a learning
    rate of 1e5 left the loss at 16.1, the clipped maximum, for five epochs where TensorFlow's became NaN
    in the first (tests/test_train.py); without it that run would end as a normal one, at chance.

    With ``steps_per_execution`` N > 1 Keras sees the loss once per call of N steps, so the message names
    the call (by the epoch step it ends at), not a batch it cannot tell apart."""

    def __init__(self, steps_per_execution: int = 1):
        super().__init__()
        self.steps_per_execution = steps_per_execution
        self._first = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._first = batch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            if self.steps_per_execution == 1:
                where = f"at batch {self._first}"
            else:
                end = call_end(self._first, self.steps_per_execution, (self.params or {}).get("steps"))
                where = f"in the training call ending at step {end} of the epoch"
            raise TrainingDiverged(
                f"training loss became {float(loss)} {where}; lower the learning rate "
                "(--set phases.*.learning_rate=...) or check the data"
            )

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        # Keras' loss includes the weight penalties (L2), which are not bounded: judge the data term alone.
        # The penalties at the epoch's end stand in for their mean over it (they change slowly).
        penalties = self.model.losses if self.model is not None else []
        data_loss = float(loss) - sum(float(keras.ops.convert_to_numpy(p)) for p in penalties)
        if data_loss > SATURATED_LOSS:
            raise TrainingDiverged(
                f"training loss averaged {data_loss:.1f} over epoch {epoch + 1}, the clipped maximum: the model "
                "saturated on wrong answers; lower the learning rate (--set phases.*.learning_rate=...) "
                "or check the data"
            )


class Execution(NamedTuple):
    """One call into the compiled training function, as :class:`StepTimer` saw it."""

    steady: bool  # past the epoch's warm-up steps
    seconds: float  # from the batch-begin hook to the batch-end hook
    gap: float  # since the previous call ended (input wait + callback overhead); 0 for an epoch's first
    steps: int = 1  # training steps it ran


class StepTimer(keras.callbacks.Callback):
    """Times training steps and the gaps between them (input wait + callback overhead).

    Whole ``fit()`` wall time includes stalls at fit and epoch boundaries, so throughput is taken
    from steps only, skipping the first ``warmup`` steps of every epoch (all steps count when an
    epoch is shorter than that).

    With ``steps_per_execution`` N > 1 (``compile``'s), Keras calls the batch hooks once per N steps,
    ``on_train_batch_begin`` with the first step's index; each call is one :class:`Execution` of N steps,
    fewer for an epoch's last when its length (``params["steps"]``) is not a multiple of N. The end
    hook's index is not used (see :func:`call_end`).

    Args:
        batch_size: images per step.
        warmup: steps skipped at every epoch's start; a call that begins among them is skipped whole.
        steps_per_execution: what the model was compiled with.
    """

    def __init__(self, batch_size: int, warmup: int = 3, steps_per_execution: int = 1):
        super().__init__()
        self.batch_size, self.warmup, self.steps_per_execution = batch_size, warmup, steps_per_execution
        self.records: list[Execution] = []
        self._begin = self._end = None
        self._first = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._end = None

    def on_train_batch_begin(self, batch, logs=None):
        self._begin, self._first = time.perf_counter(), batch

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        gap = self._begin - self._end if self._end is not None else 0.0
        end = call_end(self._first, self.steps_per_execution, (self.params or {}).get("steps"))
        steps = max(1, end - self._first)
        self.records.append(Execution(self._first >= self.warmup, now - self._begin, gap, steps))
        self._end = now

    def _totals(self) -> tuple[int, float, float]:
        chosen = [r for r in self.records if r.steady] or self.records
        return sum(r.steps for r in chosen), sum(r.seconds for r in chosen), sum(r.gap for r in chosen)

    @property
    def steps(self) -> int:
        """Training steps timed so far, warm-up included."""
        return sum(r.steps for r in self.records)

    @property
    def seconds_per_step(self) -> float:
        """Steady-state seconds per training step, input wait included (NaN before any step)."""
        n, step, gap = self._totals()
        return (step + gap) / n if n else float("nan")

    def recent_seconds_per_step(self, steps: int) -> float:
        """Steady-state seconds per step over about the last ``steps`` steps timed: the speed now, which
        a budget's plan needs after the load on the machine changed (NaN before any step)."""
        recent, n = [], 0
        for record in reversed(self.records):
            if n >= steps:
                break
            recent.append(record)
            n += record.steps
        chosen = [r for r in recent if r.steady] or recent
        total = sum(r.steps for r in chosen)
        return sum(r.seconds + r.gap for r in chosen) / total if total else float("nan")

    @property
    def images_per_second(self) -> float:
        n, step, gap = self._totals()
        return self.batch_size * n / (step + gap) if n else float("nan")

    @property
    def input_wait_fraction(self) -> float:
        n, step, gap = self._totals()
        return gap / (step + gap) if n else float("nan")


class Deadline(keras.callbacks.Callback):
    """Stops training at the end of the epoch in which the ``budget``'s deadline passed
    (:class:`bench.train.budget.Budget`, asked, never changed)."""

    def __init__(self, budget):
        super().__init__()
        self.budget = budget
        self.hit = False

    def on_epoch_end(self, epoch, logs=None):
        if self.budget.passed():
            self.hit = True
            self.model.stop_training = True


class Replanner(keras.callbacks.Callback):
    """Asks the ``budget`` (:class:`bench.train.budget.Budget`) at every epoch end of a budgeted run to
    re-fit its plan, ``budget.replan(phase, done, epoch_seconds)``, and stops training where the plan of
    phase ``phase`` (which began at epoch ``phase_start``) now ends.

    ``epoch_seconds`` is the mean wall time between the last ``window`` epoch ends (training, validation
    and every callback's work included), so a run re-fits its plan to the machine's speed now: a first
    epoch slowed by other jobs no longer leaves the budget unused, nor a slow-down mid-run cut the
    schedule short at the deadline. The first epoch of each ``fit`` call, and the one after ``replan``
    returns ``retraced=True`` (a new schedule means a new graph), also hold tracing: they are not timed.
    Until one is timed, ``fallback(wall)`` estimates an epoch from the untimed one (the trainer's
    steady-state step time plus validation). ``follow(done, decision)`` (the trainer's) follows a re-fitted
    plan and says whether it rebuilt the graph (``retraced``). An epoch after which another callback
    already stopped training (the deadline, early stopping) is not re-planned.
    """

    def __init__(
        self,
        budget,
        phase: int,
        phase_start: int,
        follow=lambda done, decision: False,
        fallback=lambda wall: wall,
        window: int = 3,
    ):
        super().__init__()
        self.budget, self.phase, self.phase_start = budget, phase, phase_start
        self.follow, self.fallback, self.window = follow, fallback, window
        self.walls: list[float] = []
        self._last_end: float | None = None
        self._skip = True

    def on_train_begin(self, logs=None):
        self._last_end, self._skip = time.perf_counter(), True

    def on_epoch_end(self, epoch, logs=None):
        wall = time.perf_counter() - self._last_end
        if not self._skip:
            self.walls.append(wall)
        if self.model.stop_training:
            return
        recent = self.walls[-self.window :]
        done = epoch + 1 - self.phase_start
        decision = self.budget.replan(self.phase, done, sum(recent) / len(recent) if recent else self.fallback(wall))
        self._skip = self.follow(done, decision)
        if decision.stop:
            self.model.stop_training = True
        self._last_end = time.perf_counter()


def current_learning_rate(model) -> float | None:
    """The rate the optimizer applies at its current step (a schedule evaluated there); None if unreadable."""
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:  # an optimizer without a readable rate is not worth failing a run
        return None


class LearningRate(keras.callbacks.Callback):
    """Adds ``learning_rate`` (the rate at the epoch's last step) to each epoch's logs, so the history holds
    it beside the losses and the training curves can show the schedule, warm-up and plateau cuts included.

    Keras records it only when ReduceLROnPlateau runs; a cosine schedule left no trace."""

    def on_epoch_end(self, epoch, logs=None):
        rate = current_learning_rate(self.model)
        if logs is not None and rate is not None:
            logs["learning_rate"] = rate


class EpochLogger(keras.callbacks.Callback):
    """Forwards every epoch's logs (and the learning rate) to ``fn(epoch, logs)``: the hook through which
    tracking code sees training without the trainer knowing about it."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if "learning_rate" not in logs and (rate := current_learning_rate(self.model)) is not None:
            logs["learning_rate"] = rate
        self.fn(epoch, logs)


class Progress(keras.callbacks.Callback):
    """Reports where training stands to ``report(status)``, at most every ``every`` seconds during an
    epoch and at every epoch end (``status["epoch_end"]``): the hook behind the CLI's live line.

    ``status`` holds phase, epoch and epochs (1-based position in the whole plan), step and steps,
    loss, images_per_second (steady state, from ``timer``), val_macro_f1 (the latest), elapsed and eta
    (seconds; eta from the mean epoch time so far, capped by the budget's deadline). With
    ``steps_per_execution`` N, ``step`` is where the latest call of N steps ended (see :func:`call_end`).
    """

    def __init__(
        self,
        report,
        *,
        phase: str,
        epochs: int,
        steps: int | None,
        timer: StepTimer,
        start: float,
        start_epoch: int = 0,
        deadline: float | None = None,
        every: float = 1.0,
        steps_per_execution: int = 1,
    ):
        super().__init__()
        self.report, self.phase, self.epochs, self.steps = report, phase, epochs, steps
        self.steps_per_execution, self._first = steps_per_execution, 0
        self.start_epoch = start_epoch  # the epoch training (or a resume) began at: eta counts from it
        self.timer, self.start, self.deadline, self.every = timer, start, deadline, every
        self._last = 0.0
        self._epoch = 0
        self._val_f1 = float("nan")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _status(self, step: int | None, logs: dict, epoch_end: bool) -> dict:
        now = time.perf_counter()
        elapsed = now - self.start
        done = self._epoch + (1 if epoch_end else 0)
        timed = done - self.start_epoch
        eta = elapsed / timed * max(0, self.epochs - done) if timed > 0 else float("nan")
        if self.deadline is not None:
            eta = min(eta, max(0.0, self.deadline - now)) if math.isfinite(eta) else max(0.0, self.deadline - now)
        return {
            "phase": self.phase,
            "epoch": self._epoch + 1,
            "epochs": self.epochs,
            "step": step,
            "steps": self.steps,
            "loss": float(logs["loss"]) if "loss" in logs else float("nan"),
            "images_per_second": self.timer.images_per_second,
            VAL_MACRO_F1: self._val_f1,
            "elapsed": elapsed,
            "eta": eta,
            "epoch_end": epoch_end,
        }

    def on_train_batch_begin(self, batch, logs=None):
        self._first = batch

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            step = call_end(self._first, self.steps_per_execution, self.steps)
            self.report(self._status(step, logs or {}, epoch_end=False))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._val_f1 = float(logs.get(VAL_MACRO_F1, self._val_f1))
        self.report(self._status(None, logs, epoch_end=True))
