"""Epoch checkpoints for ``bench run --resume``: the weights, the optimizer's variables and the trainer's
position (state.json), each written whole so that a run killed at any moment, or stopped by a full disk,
resumes from the last complete epoch."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from bench.run_record import BEST_WEIGHTS_GLOB, EMA_FILE, OPTIMIZER_FILE, STATE_FILE, WEIGHTS_FILE, best_weights_file


class Checkpointer(keras.callbacks.Callback):
    """Saves weights, the optimizer's variables and the trainer's position every epoch, so
    ``bench run --resume`` can continue: the schedule where it was, Adam's moments, a learning rate
    that ReduceLROnPlateau had cut (see :func:`restore_optimizer`).

    ``train_seconds`` (optional) says how much training time the run has spent so far, resumed parts
    included: a resumed run with a wall-clock budget gets what is left of it, not a new one.
    ``monitors`` (optional): ``{"early_stopping": ..., "plateau": ...}`` (:mod:`bench.monitors`), whose
    counters go into state.json and whose best epoch's weights into ``best-PHASE-EPOCH.weights.h5``
    (named in the state, so a kill between the two writes leaves a state and a file that agree).

    When ``fit`` ends (after early stopping restored the best epoch's weights, which it does first) the
    checkpoint is written again with those weights, and, when the phase is over — early-stopped, stopped
    by the budget, or at its planned end — with the next phase's first epoch as the position: a run
    killed before the next phase's first checkpoint resumes there, from the weights it would have used."""

    def __init__(
        self,
        folder: Path,
        state: dict,
        target: keras.Model | None = None,
        train_seconds=None,
        monitors=None,
        ema=None,
    ):
        super().__init__()
        self.folder, self.state, self.target, self.ema = Path(folder), state, target, ema
        self.train_seconds = train_seconds
        self.monitors = monitors or {}
        self.next_epoch: int | None = None
        self.folder.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        self.next_epoch = epoch + 1
        self._write(epoch + 1, ended=epoch)

    def on_train_end(self, logs=None):
        if self.next_epoch is None:
            return  # no epoch ended: the last checkpoint stands
        plan, phase = self.state.get("plan"), self.state["phase"]
        phase_end = sum(plan[: phase + 1]) if plan else self.next_epoch
        over = self.model.stop_training or self.next_epoch >= phase_end
        self._write(phase_end if over else self.next_epoch, ended=None)

    def _write(self, next_epoch: int, ended: int | None) -> None:
        # ``target``: the whole model, also when fit trains only its head on cached features.
        weights = self.folder / WEIGHTS_FILE
        write_weights(self.target or self.model, weights)
        state = {**self.state, "next_epoch": next_epoch}
        best = self._save_best(weights, ended)
        if self.monitors:
            state["monitors"] = {name: monitor.monitor_state() for name, monitor in self.monitors.items()}
            if best is not None:
                state["monitors"]["early_stopping"]["weights_file"] = best
        values = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(self.model.optimizer.variables)}
        # the position it belongs to: restore_optimizer refuses it for another one
        values["position"] = np.array([state["phase"], next_epoch])
        write_whole(self.folder / OPTIMIZER_FILE, lambda partial: np.savez(partial, **values))
        if self.ema is not None:
            write_ema(self.folder, self.ema, [state["phase"], next_epoch])
        if self.train_seconds is not None:
            state["train_seconds"] = self.train_seconds()
        write_state(self.folder, state)
        for stale in self.folder.glob(BEST_WEIGHTS_GLOB):
            if stale.name != best:
                stale.unlink()  # only now: the state written before named the file it replaces

    def _save_best(self, weights: Path, ended: int | None) -> str | None:
        """Copy the weights just saved to the best epoch's file when the epoch that ``ended`` is early
        stopping's best; the best epoch's file name (None before any)."""
        stopper = self.monitors.get("early_stopping")
        if stopper is None or stopper.best_weights is None:
            return None
        name = best_weights_file(self.state["phase"], stopper.best_epoch)
        # at the end of fit the weights are the best epoch's (restored): save them if nothing did
        if stopper.best_epoch == ended or (ended is None and not (self.folder / name).exists()):
            write_whole(self.folder / name, lambda partial: shutil.copyfile(weights, partial))
        return name if (self.folder / name).exists() else None


def write_state(folder: Path, state: dict) -> None:
    """``state.json``, the position a resume continues from, written last and whole (a kill mid-write
    leaves the previous one)."""
    text = json.dumps(state)
    write_whole(Path(folder) / STATE_FILE, lambda partial: partial.write_text(text))


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


def write_ema(folder: Path, ema, position: list[int]) -> None:
    """Keep ``ema``'s raw weights (the checkpoint's weights are the average) and step count, for the
    checkpoint at ``position`` ([phase, next epoch]); nothing while no epoch has ended."""
    if ema.raw is None:
        return
    values = {f"raw{i}": w for i, w in enumerate(ema.raw)}
    values.update(updates=np.array(ema.updates), position=np.array(position))
    write_whole(Path(folder) / EMA_FILE, lambda partial: np.savez(partial, **values))


def restore_ema(folder: Path, state: dict, ema, model: keras.Model) -> bool:
    """Continue a resumed phase's weight average: the checkpoint's weights (already loaded into ``model``)
    become the average, the raw weights saved beside them go back into ``model``, the step count goes on.
    False, with nothing changed, when there is no such file or it belongs to another position (then the
    average restarts from the checkpoint's weights, as it did before bench kept this file)."""
    path = Path(folder) / EMA_FILE
    if not path.exists():
        return False
    with np.load(path) as saved:
        if saved["position"].tolist() != [state["phase"], state["next_epoch"]]:
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


def restore_optimizer(model: keras.Model, folder: Path, state: dict) -> bool:
    """Load the optimizer variables the epoch checkpoint at ``state`` (state.json's phase and next
    epoch) saved into ``model``'s compiled optimizer, built for its trainable variables first; False,
    with no variable assigned, when there is no such file, it was saved at another position, or its
    variables do not match (a checkpoint from before bench saved optimizers, another precision).
    Early stopping's and the plateau's counters come back through :mod:`bench.monitors`."""
    path = Path(folder) / OPTIMIZER_FILE
    if not path.exists():
        return False
    with np.load(path) as saved:
        position = saved["position"].tolist() if "position" in saved.files else None
        values = [saved[f"v{i}"] for i in range(len(saved.files) - (position is not None))]
    if position != [state["phase"], state["next_epoch"]]:
        return False
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    if [tuple(v.shape) for v in optimizer.variables] != [v.shape for v in values]:
        return False
    for variable, value in zip(optimizer.variables, values, strict=True):
        variable.assign(value)
    return True


def read_resume_state(checkpoint_dir: Path) -> dict | None:
    """Where an interrupted run stopped (phase, plan, next epoch, training seconds spent), as its last
    epoch checkpoint wrote it."""
    state = Path(checkpoint_dir) / STATE_FILE
    return json.loads(state.read_text()) if state.exists() else None


def resume_position(resume_state: dict | None, plan: list[int]) -> tuple[int, int, int]:
    """``(epoch, phase, phase_start)`` to continue from: the next epoch, its phase and the phase's first
    epoch. A checkpoint written after a phase's last epoch continues with the next phase."""
    if not resume_state:
        return 0, 0, 0
    epoch, phase = resume_state["next_epoch"], resume_state["phase"]
    phase_start = sum(plan[:phase])
    if epoch >= phase_start + plan[phase]:
        phase, phase_start = phase + 1, phase_start + plan[phase]
    return epoch, phase, phase_start
