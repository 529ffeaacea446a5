"""Early stopping and ReduceLROnPlateau that continue where an interrupted run left them.

Keras' callbacks start from scratch in every ``fit``: a run resumed after its best epoch forgot that
epoch's weights and value, and both patience counters restarted, so a run split across sessions stopped
later, cut its rate later and could end on weights worse than ones it had already seen. Their counters
and best value go into the epoch checkpoint's state (:meth:`monitor_state`,
:class:`bench.train.checkpoints.ResumeState`), the best epoch's weights into a file the state names (read
back by :meth:`bench.train.checkpoints.CheckpointFolder.best_weights_loader`), and a resumed phase hands
them back (``resume=``)."""

from __future__ import annotations

from collections.abc import Callable

import keras


class _Resumable:
    """Mixin: ``resume`` (a :meth:`monitor_state` dict) replaces what ``on_train_begin`` reset, once."""

    fields: tuple[str, ...] = ()

    def __init__(self, *args, resume: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume = resume

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resume:
            for name in self.fields:
                setattr(self, name, self.resume[name])
        self.resume = None  # a later fit of the same callback starts afresh, as Keras' does

    def monitor_state(self) -> dict:
        """The counters a resume needs, as plain JSON values (``best`` None before the first epoch)."""
        state = {name: getattr(self, name) for name in self.fields}
        state["best"] = None if state["best"] is None else float(state["best"])
        return state


class ResumableEarlyStopping(_Resumable, keras.callbacks.EarlyStopping):
    """``keras.callbacks.EarlyStopping`` that can continue a resumed run's best value, best epoch,
    patience count and best weights (``load_best``, called at the start of training with the file name
    the checkpoint's state gave as ``resume["weights_file"]``). Without best weights to load it starts
    afresh: a best value without its weights would restore the wrong epoch."""

    fields = ("best", "wait", "best_epoch")

    def __init__(
        self, *args, resume: dict | None = None, load_best: Callable[[str | None], list | None] | None = None, **kwargs
    ):
        super().__init__(*args, resume=resume, **kwargs)
        self.load_best = load_best

    def on_train_begin(self, logs=None):
        weights = self.load_best(self.resume.get("weights_file")) if self.resume and self.load_best else None
        if weights is None:
            self.resume = None
        super().on_train_begin(logs)
        if weights is not None:
            self.best_weights = weights
        self.load_best = None


class ResumablePlateau(_Resumable, keras.callbacks.ReduceLROnPlateau):
    """``keras.callbacks.ReduceLROnPlateau`` that can continue a resumed run's best value, patience and
    cooldown counts (the rate it had cut comes back with the optimizer's variables)."""

    fields = ("best", "wait", "cooldown_counter")
