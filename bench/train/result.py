"""What training returns: the trained model and its record. Its own module because both the trainer
that fills it and the checkpoint folder that keeps it (``trained.json``) need it, and neither should
import the other for it."""

from __future__ import annotations

from dataclasses import dataclass, field

import keras


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    phase_starts: list[int] = field(default_factory=list)  # phase_starts[i]: the epoch phase i began at
    planned_epochs: list[int] = field(default_factory=list)
    actual_epochs: list[int] = field(default_factory=list)
    train_seconds: float = 0.0  # resumed runs: the parts before the resume included
    images_per_second: float = float("nan")
    input_wait_fraction: float = float("nan")
    budget_hit: bool = False
    replans: int = 0  # times a budgeted run re-fitted its epoch plan to the machine's speed after epoch 1
    optimizer_restarted: bool = False  # a mid-phase resume found no optimizer state to continue
    train_passes: float = 0.0  # training images seen / training split size (resumed epochs included)
    batchnorm_recomputed: int = 0  # BatchNorm layers whose statistics were recomputed after training
    batchnorm_seconds: float = 0.0  # the time that took (not training time: outside the budget)
    end_epoch: int = 0  # one past the last epoch index trained (the per-epoch curves' steps are below it)
