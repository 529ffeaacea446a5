"""A run's checkpoint folder, for ``bench run --resume``: every epoch the weights, the optimizer's
variables, the weight average's raw side and early stopping's best epoch, then the trainer's position
(``state.json``, a :class:`ResumeState`), each written whole so that a run killed at any moment, or stopped
by a full disk, resumes from the last complete epoch; once training is over, the trained model and its
record, so that a run whose logging failed resumes straight to evaluation.

Why one class: the folder's files are read and written by the epoch callback, the trainer, the runner
and the resume command; :class:`CheckpointFolder` is the one place that knows them (their names are in
:mod:`bench.run_record`), and :class:`ResumeState` is the one typed description of where a run stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from bench.run_record import (
    BEST_WEIGHTS_GLOB,
    EMA_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    TRAINED_STATE_FILE,
    TRAINED_WEIGHTS_FILE,
    WEIGHTS_FILE,
    best_weights_file,
    holds_checkpoint,
)
from bench.train.result import TrainResult


@dataclass(frozen=True)
class ResumeState:
    """Where an interrupted run stopped, as its last epoch checkpoint wrote it (``state.json``).

    Args:
        phase: the phase the checkpoint was written in (0-based).
        next_epoch: the epoch (0-based, across the whole run) training continues with; past the phase's
            last epoch when the phase was over, then training continues with the next phase.
        plan: epochs per phase when it was written (a wall-clock budget re-fits the recipe's).
        monitors: early stopping's and the plateau's counters by name (:meth:`bench.monitors._Resumable.
            monitor_state`), early stopping's with the best epoch's ``weights_file``; None without.
        train_seconds: training time spent so far, earlier resumes included (a budget continues it).
    """

    phase: int
    next_epoch: int
    plan: tuple[int, ...]
    monitors: dict | None = None
    train_seconds: float | None = None

    @classmethod
    def from_dict(cls, raw: dict) -> ResumeState:
        """A state as ``state.json`` holds it (keys an older bench did not write default to None)."""
        return cls(raw["phase"], raw["next_epoch"], tuple(raw["plan"]), raw.get("monitors"), raw.get("train_seconds"))

    def to_dict(self) -> dict:
        """The JSON ``state.json`` holds, keys in the order bench always wrote them, None ones left out."""
        raw = {"phase": self.phase, "plan": list(self.plan), "next_epoch": self.next_epoch}
        if self.monitors is not None:
            raw["monitors"] = self.monitors
        if self.train_seconds is not None:
            raw["train_seconds"] = self.train_seconds
        return raw

    def position(self) -> tuple[int, int, int]:
        """``(epoch, phase, phase_start)`` to continue from: the next epoch, its phase and the phase's first
        epoch. A checkpoint written after a phase's last epoch continues with the next phase."""
        epoch, phase = self.next_epoch, self.phase
        phase_start = sum(self.plan[:phase])
        if epoch >= phase_start + self.plan[phase]:
            phase, phase_start = phase + 1, phase_start + self.plan[phase]
        return epoch, phase, phase_start

    def add_earlier_epochs(self, result: TrainResult, logged: dict[str, dict[int, float]]) -> None:
        """Complete a mid-training resume's TrainResult with the epochs an earlier process trained, from
        the run's logged per-epoch metrics (``logged``: key -> epoch -> value): the training curves then
        cover the whole run, and a phase finished before the resume counts the epochs it ran, not its plan
        (an early-stopped phase ran fewer). The checkpoint holds weights, optimizer state and position, not
        the history: the tracking store already holds that, so it is not kept twice."""
        first = self.next_epoch
        earlier = sorted({epoch for values in logged.values() for epoch in values if epoch < first})
        if not earlier:
            return
        later = len(result.history.get("epoch", []))
        history = {"epoch": earlier + list(result.history.get("epoch", []))}
        for key in set(logged) | (set(result.history) - {"epoch"}):
            before = [logged.get(key, {}).get(epoch, math.nan) for epoch in earlier]
            history[key] = before + list(result.history.get(key, [math.nan] * later))
        result.history = history
        # The phases' starts by the final plan: a budget may have re-planned the resumed phase and later
        # ones (never those before it, so they count the same either way).
        final = result.planned_epochs if len(result.planned_epochs) == len(self.plan) else list(self.plan)
        starts = [sum(final[:i]) for i in range(len(final))]
        result.phase_starts = [s for s in starts if s <= history["epoch"][-1]]
        for i in range(self.position()[1]):  # the trainer counted the phases before the resumed one as planned
            result.actual_epochs[i] = sum(starts[i] <= epoch < starts[i] + final[i] for epoch in earlier)


class CheckpointFolder:
    """The files of one run's checkpoint folder (names in :mod:`bench.run_record`)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"CheckpointFolder({str(self.path)!r})"

    # -- what it holds
    def has_epoch(self) -> bool:
        """Whether an epoch checkpoint (its state) is here."""
        return (self.path / STATE_FILE).is_file()

    def has_trained(self) -> bool:
        """Whether the trained model and its record are here (training over, logging not)."""
        return (self.path / TRAINED_STATE_FILE).is_file()

    def resumable(self) -> bool:
        """Whether a resume has anything to continue from (a run stopped before its first epoch ended has not)."""
        return holds_checkpoint(self.path)

    # -- the trainer's position
    def state(self) -> ResumeState | None:
        """Where the run stopped, as its last epoch checkpoint wrote it; None without one."""
        path = self.path / STATE_FILE
        return ResumeState.from_dict(json.loads(path.read_text())) if path.exists() else None

    def write_state(self, state: ResumeState) -> None:
        """``state.json``, the position a resume continues from, written last and whole (a kill mid-write
        leaves the previous one)."""
        text = json.dumps(state.to_dict())
        write_whole(self.path / STATE_FILE, lambda partial: partial.write_text(text))

    # -- the epoch's files
    def write_weights(self, model: keras.Model) -> Path:
        """The last epoch's weights (see :func:`write_weights`); their path."""
        write_weights(model, self.path / WEIGHTS_FILE)
        return self.path / WEIGHTS_FILE

    def load_weights(self, model: keras.Model) -> None:
        """The last epoch's weights into ``model``."""
        model.load_weights(self.path / WEIGHTS_FILE)

    def write_optimizer(self, optimizer, position: list[int]) -> None:
        """The optimizer's variables, with the position ([phase, next epoch]) they belong to."""
        values = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
        values["position"] = np.array(position)  # restore_optimizer refuses it for another position
        write_whole(self.path / OPTIMIZER_FILE, lambda partial: np.savez(partial, **values))

    def restore_optimizer(self, model: keras.Model, state: ResumeState) -> bool:
        """Load the optimizer variables the epoch checkpoint at ``state`` saved into ``model``'s compiled
        optimizer, built for its trainable variables first; False, with no variable assigned, when there is
        no such file, it was saved at another position, or its variables do not match (a checkpoint from
        before bench saved optimizers, another precision). Early stopping's and the plateau's counters come
        back through :mod:`bench.monitors`."""
        path = self.path / OPTIMIZER_FILE
        if not path.exists():
            return False
        with np.load(path) as saved:
            position = saved["position"].tolist() if "position" in saved.files else None
            values = [saved[f"v{i}"] for i in range(len(saved.files) - (position is not None))]
        if position != [state.phase, state.next_epoch]:
            return False
        optimizer = model.optimizer
        optimizer.build(model.trainable_variables)
        if [tuple(v.shape) for v in optimizer.variables] != [v.shape for v in values]:
            return False
        for variable, value in zip(optimizer.variables, values, strict=True):
            variable.assign(value)
        return True

    def write_ema(self, ema, position: list[int]) -> None:
        """Keep ``ema``'s raw weights (the checkpoint's weights are the average) and step count, for the
        checkpoint at ``position`` ([phase, next epoch]); nothing while no epoch has ended."""
        if ema.raw is None:
            return
        values = {f"raw{i}": w for i, w in enumerate(ema.raw)}
        values.update(updates=np.array(ema.updates), position=np.array(position))
        write_whole(self.path / EMA_FILE, lambda partial: np.savez(partial, **values))

    def restore_ema(self, state: ResumeState, ema, model: keras.Model) -> bool:
        """Continue a resumed phase's weight average (:class:`bench.train.ema.WeightEMA`): the checkpoint's
        weights (already loaded into ``model``) become the average, the raw weights saved beside them go
        back into ``model``, the step count goes on. False, with nothing changed, when there is no such
        file or it belongs to another position (the average then restarts from the checkpoint's weights,
        as it did before bench kept this file)."""
        path = self.path / EMA_FILE
        if not path.exists():
            return False
        with np.load(path) as saved:
            if saved["position"].tolist() != [state.phase, state.next_epoch]:
                return False
            raw = [saved[f"raw{i}"] for i in range(len(saved.files) - 2)]
            updates = int(saved["updates"])
        current = model.get_weights()
        if [w.shape for w in raw] != [w.shape for w in current]:
            return False
        ema.average = [np.array(w, dtype=np.float32) for w in current]
        ema.updates = updates
        model.set_weights(raw)
        return True

    def save_best(self, phase: int, epoch: int, copy: bool) -> str | None:
        """The file of early stopping's best ``epoch`` of ``phase``, copied from the last epoch's weights
        when ``copy`` (or when it does not exist yet and ``copy`` is None); its name if it exists."""
        name = best_weights_file(phase, epoch)
        target = self.path / name
        if copy or (copy is None and not target.exists()):
            write_whole(target, lambda partial: shutil.copyfile(self.path / WEIGHTS_FILE, partial))
        return name if target.exists() else None

    def drop_stale_best(self, keep: str | None) -> None:
        """Remove every best-epoch file but ``keep``: only once the state naming ``keep`` is written."""
        for stale in self.path.glob(BEST_WEIGHTS_GLOB):
            if stale.name != keep:
                stale.unlink()

    def best_weights_loader(self, model: keras.Model, target: keras.Model) -> Callable[[str | None], list | None]:
        """A function of a best-epoch file name here (the whole ``model``'s weights, as checkpoints save
        them) giving ``target``'s weights in it (``target`` is ``model`` or its head), ``model``'s own
        weights left as they were; None for no name or no such file."""

        def load(name: str | None) -> list | None:
            path = self.path / name if name else None
            if path is None or not path.exists():
                return None
            current = model.get_weights()
            model.load_weights(path)
            best = target.get_weights()
            model.set_weights(current)
            return best

        return load

    # -- training over
    def save_trained(self, model: keras.Model, result: TrainResult) -> None:
        """The trained model's weights and its training record (history, epoch counts, throughput) beside
        the epoch checkpoints, before anything is logged: a run whose logging fails resumes straight to
        evaluation with the same model and figures, not only the same weights (the epoch checkpoint's last
        write already holds the weights early stopping restored). Temporary names, then renames: a full
        disk leaves the epoch checkpoint intact (the weights first: the record says the weights are there)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_weights(model, self.path / TRAINED_WEIGHTS_FILE)
        fields = dataclasses.fields(result)
        text = json.dumps({f.name: getattr(result, f.name) for f in fields if f.name != "model"})
        write_whole(self.path / TRAINED_STATE_FILE, lambda partial: partial.write_text(text))

    def load_trained(self, model: keras.Model) -> TrainResult | None:
        """The TrainResult :meth:`save_trained` kept, with its weights loaded into ``model``; None if none."""
        if not self.has_trained():
            return None
        model.load_weights(self.path / TRAINED_WEIGHTS_FILE)
        return TrainResult(model, **json.loads((self.path / TRAINED_STATE_FILE).read_text()))


class Checkpointer(keras.callbacks.Callback):
    """Saves weights, the optimizer's variables and the trainer's position every epoch into a
    :class:`CheckpointFolder`, so ``bench run --resume`` can continue: the schedule where it was, Adam's
    moments, a learning rate that ReduceLROnPlateau had cut (see :meth:`CheckpointFolder.restore_optimizer`).

    ``phase`` is the phase being trained and ``plan`` the run's epochs per phase (the trainer's own list:
    a budget's re-plan changes it in place, and the next write records the change).
    ``train_seconds`` (optional) says how much training time the run has spent so far, resumed parts
    included: a resumed run with a wall-clock budget gets what is left of it, not a new one.
    ``monitors`` (optional): ``{"early_stopping": ..., "plateau": ...}`` (:mod:`bench.monitors`), whose
    counters go into the state and whose best epoch's weights into ``best-PHASE-EPOCH.weights.h5``
    (named in the state, so a kill between the two writes leaves a state and a file that agree).

    When ``fit`` ends (after early stopping restored the best epoch's weights, which it does first) the
    checkpoint is written again with those weights, and, when the phase is over — early-stopped, stopped
    by the budget, or at its planned end — with the next phase's first epoch as the position: a run
    killed before the next phase's first checkpoint resumes there, from the weights it would have used."""

    def __init__(
        self,
        folder: CheckpointFolder | Path,
        phase: int,
        plan: list[int] | None,
        target: keras.Model | None = None,
        train_seconds=None,
        monitors=None,
        ema=None,
    ):
        super().__init__()
        self.folder = folder if isinstance(folder, CheckpointFolder) else CheckpointFolder(folder)
        self.phase, self.plan, self.target, self.ema = phase, plan, target, ema
        self.train_seconds = train_seconds
        self.monitors = monitors or {}
        self.next_epoch: int | None = None
        self.folder.path.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        self.next_epoch = epoch + 1
        self._write(epoch + 1, ended=epoch)

    def on_train_end(self, logs=None):
        if self.next_epoch is None:
            return  # no epoch ended: the last checkpoint stands
        phase_end = sum(self.plan[: self.phase + 1]) if self.plan else self.next_epoch
        over = self.model.stop_training or self.next_epoch >= phase_end
        self._write(phase_end if over else self.next_epoch, ended=None)

    def _write(self, next_epoch: int, ended: int | None) -> None:
        # ``target``: the whole model, also when fit trains only its head on cached features.
        self.folder.write_weights(self.target or self.model)
        best = self._save_best(ended)
        monitors = None
        if self.monitors:
            monitors = {name: monitor.monitor_state() for name, monitor in self.monitors.items()}
            if best is not None:
                monitors["early_stopping"]["weights_file"] = best
        position = [self.phase, next_epoch]
        self.folder.write_optimizer(self.model.optimizer, position)
        if self.ema is not None:
            self.folder.write_ema(self.ema, position)
        seconds = self.train_seconds() if self.train_seconds is not None else None
        self.folder.write_state(ResumeState(self.phase, next_epoch, tuple(self.plan or ()), monitors, seconds))
        self.folder.drop_stale_best(best)  # only now: the state written before named the file it replaces

    def _save_best(self, ended: int | None) -> str | None:
        """Copy the weights just saved to the best epoch's file when the epoch that ``ended`` is early
        stopping's best; the best epoch's file name (None before any). At the end of fit (``ended`` None)
        the weights are the best epoch's (restored): saved if nothing did."""
        stopper = self.monitors.get("early_stopping")
        if stopper is None or stopper.best_weights is None:
            return None
        copy = True if stopper.best_epoch == ended else (None if ended is None else False)
        return self.folder.save_best(self.phase, stopper.best_epoch, copy)


def write_whole(target: Path, write: Callable[[Path], object]) -> None:
    """Write ``target`` through ``write(partial)`` under a temporary name beside it, then rename it: a
    kill or a full disk mid-write leaves the previous file whole. Every checkpoint file is written here,
    so here is where a failed write is caught: the partial file is removed (its space is what lets the
    store still mark the run FAILED) and the ``OSError`` re-raised naming ``target`` and the cause."""
    from bench.errors import os_error_text

    target = Path(target)
    partial = target.with_name(f"partial-{target.name}")
    try:
        write(partial)
        os.replace(partial, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        cause = os.strerror(exc.errno) if exc.errno else os_error_text(exc)
        raise OSError(exc.errno, cause, str(target)) from exc


def write_weights(model: keras.Model, target: Path) -> None:
    """``model.save_weights(target)``, written whole (see :func:`write_whole`). The HDF5 file is built
    in memory, then written with Python's file API: h5py writing straight to a disk that fills leaves
    an HDF5 file handle half-flushed, which prints a traceback at every later flush and can crash the
    process (SIGSEGV) when it is collected.

    Keras has no public way to save weights to memory, so this uses the two helpers its own
    ``save_weights`` calls (``keras.src.saving.saving_lib``: ``H5IOStore`` over a BytesIO, ``_save_state``):
    a private API, chosen deliberately for this one fault. Where a Keras release lacks them, it falls
    back to ``save_weights`` on the temporary name (the previous checkpoint still survives a full disk)."""
    try:
        from keras.src.saving import saving_lib

        buffer = io.BytesIO()
        store = saving_lib.H5IOStore(buffer, mode="w")
        try:
            saving_lib._save_state(
                model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set()
            )
        finally:
            store.close()
    except (ImportError, AttributeError, TypeError):  # helpers moved, renamed or re-signed in this Keras
        write_whole(target, model.save_weights)
        return
    data = buffer.getvalue()
    write_whole(target, lambda partial: partial.write_bytes(data))
