"""The phase trainer: freeze/unfreeze per phase, recompile, early stopping, wall-clock budget.

It returns the history and the trained model; it knows nothing of MLflow or Optuna, which attach
through the ``callbacks`` argument.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from bench import callbacks as cb
from bench.config import PhaseConfig, Recipe
from bench.data.augment import build_augmenter
from bench.data.checks import cross_split_train_duplicates
from bench.data.dataset import FerData, stratified_holdout
from bench.data.pipeline import make_dataset
from bench.data.weights import class_weights
from bench.errors import BenchError
from bench.freezing import apply_phase_trainability, head_of


@dataclass(frozen=True)
class Splits:
    """The arrays one run trains, validates and tests on, and the class weights it uses."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_weights: np.ndarray
    n_deduped: int = 0


def prepare_splits(data: FerData, recipe: Recipe) -> Splits:
    """Apply ``dedupe``, ``max_train`` / ``max_eval`` (stratified, seeded) and compute class weights."""
    cfg, seed = recipe.data, recipe.run.seed
    train_mask = data.splits == "train"
    n_deduped = 0
    if cfg.dedupe:
        dup = cross_split_train_duplicates(data)
        train_mask[dup] = False
        n_deduped = len(dup)

    def subset(mask: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = data.images[mask], data.labels[mask]
        if limit and len(y) > limit:
            keep = stratified_holdout(y, limit / len(y), seed)
            x, y = x[keep], y[keep]
        return x, y

    x_train, y_train = subset(train_mask, cfg.max_train)
    x_val, y_val = subset(data.splits == "val", cfg.max_eval)
    x_test, y_test = subset(data.splits == "test", cfg.max_eval)
    if len(y_train) == 0 or len(y_val) == 0:
        raise BenchError(f"{data.source}: training needs non-empty train and val splits; sizes {data.split_sizes()}")
    cw = recipe.class_weights
    weights = class_weights(y_train, cw.scheme, cw.power, cw.boost)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, weights, n_deduped)


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
    if phase.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=phase.weight_decay)
    if phase.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.SGD(learning_rate, momentum=0.9, weight_decay=phase.weight_decay or None)


def shrink_plan(plan: list[int], done_in_first: int, epoch_seconds: float, seconds_left: float) -> list[int]:
    """Scale the planned epochs of every phase so the remaining ones fit ``seconds_left``.

    ``done_in_first`` epochs of phase 0 are already done; every phase keeps at least one epoch.
    """
    remaining = sum(plan) - done_in_first
    affordable = seconds_left / max(epoch_seconds, 1e-9)
    if remaining <= 0 or affordable >= remaining:
        return list(plan)
    scale = affordable / remaining
    new = [max(1, int(math.floor(n * scale))) for n in plan]
    new[0] = max(done_in_first, done_in_first + int(math.floor((plan[0] - done_in_first) * scale)))
    return new


CACHE_LIMIT_BYTES = 6 * 2**30
"""Largest feature cache (train + val, float32) built in memory; beyond it the phase runs uncached.
ResNet50 at 48x48 needs ~1 GB for FER2013; at 224x224 ~12 GB, which would not fit this machine."""


@dataclass
class CachedFeatures:
    """A head-only phase's inputs: backbone features of the (never augmented) splits, computed once."""

    train: object  # tf.data.Dataset of (features, one-hot, weight)
    validation: cb.ValidationMetrics
    seconds: float  # time spent computing the features


def feature_extractor(model: keras.Model) -> keras.Model:
    """The part of a bench model in front of the head (input adapter + backbone), sharing its layers."""
    head = head_of(model)
    return keras.Model(model.inputs, head._inbound_nodes[0].input_tensors[0], name="features")


def cache_features(model: keras.Model, splits: Splits, recipe: Recipe, fixed_steps: int | None):
    """Backbone features of the train and val splits, batched exactly like the uncached plain dataset
    (same oversampling, shuffle seed and batches), so training the head on them takes the same steps.

    Features come from the backbone in inference mode, which is what a frozen backbone computes in
    ``fit`` too (frozen BatchNorm runs in inference mode); a backbone with dropout layers would differ.
    Returns None when the cache would exceed :data:`CACHE_LIMIT_BYTES`."""
    extractor = feature_extractor(model)
    per_image = int(np.prod(extractor.output.shape[1:])) * 4
    if per_image * (len(splits.y_train) + len(splits.y_val)) > CACHE_LIMIT_BYTES:
        return None
    tic = time.perf_counter()

    def features(x):  # the same input pipeline, unaugmented and in order
        ds = make_dataset(x, np.zeros(len(x), np.int64), batch_size=256).map(lambda xb, yb: xb)
        return extractor.predict(ds, verbose=0)

    bs, seed = recipe.data.batch_size, recipe.run.seed
    train = make_dataset(
        features(splits.x_train),
        splits.y_train,
        batch_size=bs,
        weights=splits.class_weights,
        shuffle=True,
        seed=seed,
        oversample=recipe.data.oversample,
    )
    if fixed_steps:
        train = train.repeat()
    val = make_dataset(features(splits.x_val), splits.y_val, batch_size=max(bs, 256)).map(lambda x, y: x)
    return CachedFeatures(train, cb.ValidationMetrics(val, splits.y_val), time.perf_counter() - tic)


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    phase_starts: list[int] = field(default_factory=list)  # phase_starts[i]: the epoch phase i began at
    planned_epochs: list[int] = field(default_factory=list)
    actual_epochs: list[int] = field(default_factory=list)
    train_seconds: float = 0.0
    images_per_second: float = float("nan")
    input_wait_fraction: float = float("nan")
    budget_hit: bool = False
    train_passes: float = 0.0  # training images seen / training split size (resumed epochs included)


def _resolve_jit(recipe: Recipe) -> bool:
    if recipe.run.jit_compile != "auto":
        return recipe.run.jit_compile == "on"
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))  # XLA was 2-9x slower on the CPUs measured


class Trainer:
    """Runs a recipe's phases on one model.

    Args:
        model: from :func:`bench.models.build_model`.
        recipe: the resolved recipe.
        splits: from :func:`prepare_splits`.
        pretrained: whether the backbone started from pretrained weights (BatchNorm policy).
        callbacks: extra Keras callbacks (tracking, pruning), run after bench's own each epoch.
        checkpoint_dir: where to save per-epoch checkpoints for ``--resume`` (None = no checkpoints).
        verbose: Keras ``fit`` verbosity.
        progress: called with a status dict every second and at every epoch end (see
            :class:`bench.callbacks.Progress`); None for no reports.
    """

    def __init__(
        self,
        model,
        recipe: Recipe,
        splits: Splits,
        *,
        pretrained: bool = False,
        callbacks=(),
        checkpoint_dir: Path | None = None,
        verbose: int = 0,
        progress=None,
    ):
        self.model, self.recipe, self.splits = model, recipe, splits
        self.progress, self.started, self.first_epoch = progress, time.perf_counter(), 0
        self.pretrained, self.extra_callbacks = pretrained, list(callbacks)
        self.checkpoint_dir, self.verbose = checkpoint_dir, verbose
        bs, seed = recipe.data.batch_size, recipe.run.seed
        augmenter = build_augmenter(recipe.data.augment, seed)
        common = dict(
            batch_size=bs, weights=splits.class_weights, shuffle=True, seed=seed, oversample=recipe.data.oversample
        )
        self.train_aug = make_dataset(splits.x_train, splits.y_train, augmenter=augmenter, **common)
        self.train_plain = make_dataset(splits.x_train, splits.y_train, augmenter=None, **common)
        self.val_x = make_dataset(splits.x_val, splits.y_val, batch_size=max(bs, 256)).map(lambda x, y: x)
        self.fixed_steps = recipe.run.steps_per_epoch or None
        if self.fixed_steps:
            # Epochs of N batches: the stream repeats (reshuffled each pass) instead of ending.
            self.train_aug, self.train_plain = self.train_aug.repeat(), self.train_plain.repeat()
        self.steps_per_epoch = self.fixed_steps or int(self.train_aug.cardinality())
        self.timer = cb.StepTimer(bs)
        self.validation = cb.ValidationMetrics(self.val_x, splits.y_val)
        self.cached: CachedFeatures | None = None  # the current head-only phase's features, if cached
        self.jit = _resolve_jit(recipe)

    def _cacheable(self, phase: PhaseConfig) -> bool:
        """Head-only phases without augmentation see the same backbone features every epoch."""
        augmented = phase.augment and self.recipe.data.augment.enabled
        return self.recipe.run.cache_features and phase.train == "head" and not augmented

    @property
    def _target(self) -> keras.Model:
        """What ``fit`` trains: the head alone on cached features, or the whole model."""
        return head_of(self.model) if self.cached is not None else self.model

    def _prepare_phase(self, phase: PhaseConfig) -> None:
        self.cached = None
        if self._cacheable(phase):
            self.cached = cache_features(self.model, self.splits, self.recipe, self.fixed_steps)

    def _compile(self, phase: PhaseConfig, epochs: int) -> None:
        schedule = make_schedule(phase, self.steps_per_epoch, epochs)
        self._target.compile(
            optimizer=make_optimizer(phase, schedule),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=phase.label_smoothing),
            metrics=["accuracy"],
            jit_compile=self.jit,
        )

    def _callbacks(self, phase: PhaseConfig, phase_index: int, plan: list[int], deadline: float | None):
        monitor = self.recipe.run.monitor
        patience = phase.early_stopping_patience or 10**9  # 0 = no early stop, but still keep the best epoch
        cbs = [
            cb.NanGuard(),
            self.cached.validation if self.cached is not None else self.validation,
            cb.LearningRate(),
            self.timer,
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode="min" if monitor == "val_loss" else "max",
                patience=patience,
                restore_best_weights=True,
            ),
        ]
        if phase.reduce_on_plateau:
            cbs.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss",
                    factor=phase.plateau_factor,
                    patience=phase.plateau_patience,
                    min_lr=phase.min_lr,
                )
            )
        if deadline is not None:
            cbs.append(cb.Deadline(deadline))
        if self.progress is not None:
            cbs.append(
                cb.Progress(
                    self.progress,
                    phase=phase.name,
                    epochs=sum(plan),
                    steps=self.steps_per_epoch,
                    timer=self.timer,
                    start=self.started,
                    start_epoch=self.first_epoch,
                    deadline=deadline,
                )
            )
        if self.checkpoint_dir is not None:
            cbs.append(cb.Checkpointer(self.checkpoint_dir, {"phase": phase_index, "plan": plan}, target=self.model))
        return cbs + self.extra_callbacks

    def _fit(self, phase, phase_index, plan, start, end, deadline):
        callbacks = self._callbacks(phase, phase_index, plan, deadline)
        if self.cached is not None:
            data = self.cached.train
        else:
            data = self.train_aug if phase.augment and self.recipe.data.augment.enabled else self.train_plain
        hist = self._target.fit(
            data,
            initial_epoch=start,
            epochs=end,
            steps_per_epoch=self.fixed_steps,
            callbacks=callbacks,
            verbose=self.verbose,
            shuffle=False,
        )
        hit = any(isinstance(c, cb.Deadline) and c.hit for c in callbacks)
        return hist, hit

    def run(self, resume_state: dict | None = None) -> TrainResult:
        """Train every phase in order with one continuous epoch counter."""
        recipe, phases = self.recipe, self.recipe.phases
        plan = list(resume_state["plan"]) if resume_state else [p.epochs for p in phases]
        budget = recipe.run.budget_minutes * 60
        t0 = self.started = time.perf_counter()
        deadline = t0 + budget if budget else None
        result = TrainResult(self.model, planned_epochs=[p.epochs for p in phases])
        epoch = self.first_epoch = resume_state["next_epoch"] if resume_state else 0
        first_phase = resume_state["phase"] if resume_state else 0
        phase_start = sum(plan[:first_phase])
        if resume_state and epoch >= phase_start + plan[first_phase]:
            first_phase, phase_start = first_phase + 1, phase_start + plan[first_phase]
        # phase_starts[i] is always phase i's start (the plots name phases by position), resumed or not
        result.phase_starts = [sum(plan[:i]) for i in range(first_phase)]
        result.actual_epochs = [plan[i] if i < first_phase else 0 for i in range(len(phases))]
        for i in range(first_phase, len(phases)):
            phase = phases[i]
            epoch = max(epoch, phase_start)
            result.phase_starts.append(epoch)
            apply_phase_trainability(self.model, phase.train, phase.band, pretrained=self.pretrained)
            self._prepare_phase(phase)
            self._compile(phase, plan[i])
            begin = phase_start  # a resumed phase counts the epochs it ran before the interruption too
            if budget and i == 0 and epoch == 0:
                # Measure one epoch, then shrink the plan so every phase fits the budget; the rescaled
                # schedule replaces the optimizer's in place (its moments and step count are kept).
                tic = time.perf_counter()
                hist, hit = self._fit(phase, i, plan, 0, 1, deadline)
                self._merge(result, hist)
                epoch = 1
                plan = shrink_plan(
                    plan, 1, self._epoch_seconds(time.perf_counter() - tic), deadline - time.perf_counter()
                )
                self._target.optimizer.learning_rate = make_schedule(phase, self.steps_per_epoch, plan[0])
                self._target.train_function = None
                if hit:
                    result.budget_hit = True
            if epoch < phase_start + plan[i] and not result.budget_hit:
                hist, hit = self._fit(phase, i, plan, epoch, phase_start + plan[i], deadline)
                self._merge(result, hist)
                epoch += len(hist.epoch)
                result.budget_hit |= hit
            result.actual_epochs[i] = epoch - begin
            phase_start += plan[i]
            if result.budget_hit:
                break
        self.cached = None
        result.train_seconds = time.perf_counter() - t0
        result.images_per_second = self.timer.images_per_second
        result.input_wait_fraction = self.timer.input_wait_fraction
        result.planned_epochs = plan if budget else result.planned_epochs
        result.train_passes = self.passes(sum(result.actual_epochs))
        return result

    def passes(self, epochs: int) -> float:
        """How many times ``epochs`` epochs go over the training split. An under-trained row on a
        leaderboard (say, 0.7 passes for a slow backbone in a short budget) is then visible at a glance."""
        n = max(1, len(self.splits.y_train))
        per_batch = min(self.recipe.data.batch_size, n)  # a split smaller than a batch is one short batch
        return self.steps_per_epoch * epochs * per_batch / n

    def _epoch_seconds(self, first_epoch_wall: float) -> float:
        """What one more epoch will cost: steady-state steps plus a validation pass.

        The first epoch's wall time also holds graph tracing and start-up stalls (up to half of it
        for a short epoch), which made the plan shrink too far and left budget unused."""
        per_step = self.timer.seconds_per_step
        if not math.isfinite(per_step):
            return first_epoch_wall
        validation = self.cached.validation if self.cached is not None else self.validation
        return min(first_epoch_wall, per_step * self.steps_per_epoch + validation.seconds)

    @staticmethod
    def _merge(result: TrainResult, hist) -> None:
        for key, values in hist.history.items():
            result.history.setdefault(key, []).extend(float(v) for v in values)
        result.history.setdefault("epoch", []).extend(hist.epoch)


def read_resume_state(checkpoint_dir: Path) -> dict | None:
    state = Path(checkpoint_dir) / "state.json"
    return json.loads(state.read_text()) if state.exists() else None


def resolve_precision(precision: str) -> str:
    """``auto`` = mixed_float16 on a GPU, float32 on CPU (bfloat16 helps some CPU models, not all)."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


def build_for_recipe(backbone: str, head: str, recipe: Recipe):
    """Seed, resolve the precision policy and build the model a recipe asks for: (model, spec, precision)."""
    from bench.models import build_model

    seed_everything(recipe.run.seed, recipe.run.deterministic)
    precision = resolve_precision(recipe.model.precision)
    model, spec = build_model(
        backbone=backbone,
        head=head,
        image_size=recipe.data.image_size,
        weights=recipe.model.weights,
        channel_adapter=recipe.data.channel_adapter,
        head_options=recipe.model.head_options.get(head, {}),
        precision=precision,
    )
    return model, spec, precision


def seed_everything(seed: int, deterministic: bool) -> None:
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


__all__ = ["Splits", "TrainResult", "Trainer", "prepare_splits"]
