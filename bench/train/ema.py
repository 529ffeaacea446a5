"""An exponential moving average of the weights (timm's ``ModelEmaV2``), as a Keras callback.

Every training step the average moves towards the model's weights (trainable ones and BatchNorm's
statistics alike, as timm averages the whole state); at every epoch end the averaged weights are swapped
into the model, so everything that reads the model then (validation, the best-epoch restore, the epoch
checkpoint, and at the end evaluation and the saved model) sees the averaged weights; at the next epoch's
start the raw weights are swapped back and training continues on them.

Why not Keras' own ``use_ema`` optimizers with ``keras.callbacks.SwapEMAWeights``: that callback assumes
``fit`` runs to its last epoch (it only leaves the average in place when ``epoch == epochs - 1``); bench's
fits end earlier (the budget's re-planning, early stopping, the deadline), and then Keras' end-of-fit
``finalize_variable_values`` copies the swapped-out raw weights over the averaged ones. Reaching the
average from outside the optimizer needs its private attributes. The average here is kept in NumPy, read
from the model's public weights. Reading them costs ~16 ms and the update ~7 ms for baseline_cnn + hybrid
(1.09 M weights) on this 2-core CPU, against a ~135 ms training step, so the average moves every
``every`` steps (4 by default, ~4 % of a step) by ``decay ** every``: the same horizon, sampled more
sparsely (for decay 0.998, ~500 steps averaged from ~125 samples).

Like timm, the decay warms up, ``min(decay, (1 + n) / (10 + n))`` after ``n`` steps, so the first
epochs' average is not dominated by the random initial weights. Steps are counted from the batch index
Keras reports, so ``run.steps_per_execution`` (one callback per several steps) counts every step. The
epoch checkpoint keeps both sides (:meth:`bench.train.checkpoints.CheckpointFolder.write_ema`): the average as the
checkpoint's weights, the raw weights and the step count beside them, so a resumed run trains on from
the raw weights with the average it had.
"""

from __future__ import annotations

import keras
import numpy as np


class WeightEMA(keras.callbacks.Callback):
    """Average the model's weights every training step; hold the average in the model between epochs.

    Args:
        decay: the moving average's decay per step, 0 < decay < 1 (0.998 averages about the last 500 steps).
        updates: how many steps the average already covered (a resume continues the warm-up).
        every: move the average every this many steps, by ``decay ** every``.

    One instance follows one model across several ``fit`` calls (a budget's first-epoch fit and the rest
    of the phase): put it first in the callback list, so the other callbacks' epoch ends see the average.
    """

    def __init__(self, decay: float, updates: int = 0, every: int = 4):
        super().__init__()
        if not 0 < decay < 1:
            raise ValueError(f"WeightEMA needs 0 < decay < 1. Received: decay={decay}")
        if every < 1:
            raise ValueError(f"WeightEMA needs every >= 1. Received: every={every}")
        self.decay, self.updates, self.every = float(decay), int(updates), int(every)
        self.average: list[np.ndarray] | None = None
        self.raw: list[np.ndarray] | None = None  # the training weights while the average is in the model
        self._pending = 0  # steps since the average last moved
        self._epoch_steps = 0  # steps of the current epoch seen so far (Keras' batch index + 1)

    def current_decay(self) -> float:
        """The decay per step after ``updates`` steps: timm's warm-up, never above ``decay``."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def on_train_begin(self, logs=None):
        if self.average is None:
            self.average = [np.array(w, dtype=np.float32) for w in self.model.get_weights()]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_steps = 0
        if self.raw is not None:
            self.model.set_weights(self.raw)
            self.raw = None

    def on_train_batch_end(self, batch, logs=None):
        steps = max(1, batch + 1 - self._epoch_steps)  # several with steps_per_execution > 1
        self._epoch_steps = batch + 1
        self.updates += steps
        self._pending += steps
        if self._pending < self.every:
            return
        if hasattr(self.model, "jax_state_sync"):  # JAX keeps the step's state outside the variables
            self.model.jax_state_sync()
        decay = self.current_decay() ** self._pending
        self._pending = 0
        for average, weight in zip(self.average, self.model.get_weights(), strict=True):
            average *= decay
            average += (1.0 - decay) * weight

    def on_epoch_end(self, epoch, logs=None):
        if self.raw is None:
            self.raw = self.model.get_weights()
            self.model.set_weights([a.astype(r.dtype) for a, r in zip(self.average, self.raw, strict=True)])
