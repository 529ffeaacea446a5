"""A phase's optimizer and learning-rate schedule, and the budget's rescaling of the epoch plan."""

from __future__ import annotations

import math

import keras

from bench.config import PhaseConfig, Recipe


def make_schedule(phase: PhaseConfig, steps_per_epoch: int, epochs: int):
    """The phase's learning rate: a float, or a warm-up + cosine (with restarts) schedule over ``epochs``."""
    lr = phase.learning_rate
    if phase.schedule == "constant":
        return lr
    warmup = int(round(phase.warmup_epochs * steps_per_epoch))
    if phase.schedule == "cosine":
        decay = max(1, epochs * steps_per_epoch - warmup)
        if warmup:
            # Warm up linearly from ~0 to the phase's rate, then decay to min_lr_fraction of it.
            return keras.optimizers.schedules.CosineDecay(
                lr * 1e-2, decay, alpha=phase.min_lr_fraction, warmup_target=lr, warmup_steps=warmup
            )
        return keras.optimizers.schedules.CosineDecay(lr, decay, alpha=phase.min_lr_fraction)
    return keras.optimizers.schedules.CosineDecayRestarts(
        lr, phase.restart_epochs * steps_per_epoch, alpha=phase.min_lr_fraction
    )


def make_optimizer(phase: PhaseConfig, learning_rate):
    """The phase's optimizer around ``learning_rate`` (a float or a schedule)."""
    if phase.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=phase.weight_decay)
    if phase.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    nesterov = phase.optimizer == "sgd_nesterov"
    return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=nesterov, weight_decay=phase.weight_decay or None)


def resolve_jit(recipe: Recipe) -> bool:
    """Whether to compile the training step with XLA (``run.jit_compile``; ``auto`` decides per backend)."""
    if recipe.run.jit_compile != "auto":
        return recipe.run.jit_compile == "on"
    from bench.backend import accelerators, backend_name

    backend = backend_name()
    if backend == "jax":
        return True  # JAX without jit runs every op eagerly: many times slower, on any device
    if backend == "torch":
        return False  # Keras' own default there; torch.compile is untested with these models
    return bool(accelerators())  # TensorFlow: XLA was 2-9x slower on the CPUs measured


def compile_phase(
    model, phase: PhaseConfig, *, steps_per_epoch: int, epochs: int, jit_compile: bool, steps_per_execution: int = 1
) -> None:
    """Compile ``model`` for one phase of ``epochs`` epochs: the phase's optimizer and schedule,
    cross-entropy with its label smoothing, accuracy. The trainer's one way to compile, public so that
    ``benchmarks/cpu_speed.py --ratios`` times the very training step bench runs."""
    model.compile(
        optimizer=make_optimizer(phase, make_schedule(phase, steps_per_epoch, epochs)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=phase.label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit_compile,
        # batch callbacks then run once per N steps; StepTimer and Progress count steps accordingly
        steps_per_execution=steps_per_execution,
    )


def fit_plan(epochs: list[int], phase: int, done: int, epoch_seconds: float, seconds_left: float) -> list[int]:
    """The recipe's epochs per phase (``epochs``), scaled so that what is left fits ``seconds_left``.

    Phase ``phase`` has run ``done`` epochs; the phases before it are over (their entries come back
    unchanged). Nothing grows past the recipe's epochs, and every later phase keeps at least one epoch.
    Called after the first epoch and again at every epoch end while a budget runs, so a machine that
    speeds up or slows down mid-run gets the epochs it can now afford, not the first epoch's guess.

    >>> fit_plan([30], 0, 1, epoch_seconds=60, seconds_left=600)
    [11]
    >>> fit_plan([10, 5, 5], 0, 1, epoch_seconds=10, seconds_left=1000)
    [10, 5, 5]
    """
    remaining = epochs[phase] - done + sum(epochs[phase + 1 :])
    affordable = seconds_left / max(epoch_seconds, 1e-9)
    if remaining <= 0 or affordable >= remaining:
        return list(epochs)
    scale = affordable / remaining
    new = list(epochs[:phase]) + [max(1, int(math.floor(n * scale))) for n in epochs[phase:]]
    new[phase] = max(done, done + int(math.floor((epochs[phase] - done) * scale)))
    return new
