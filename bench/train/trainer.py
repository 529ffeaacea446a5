"""The phase trainer: freeze/unfreeze per phase, recompile, early stopping, wall-clock budget.

It returns the history and the trained model; it knows nothing of MLflow or Optuna, which attach
through the ``callbacks`` argument.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import replace
from pathlib import Path

import keras

from bench import callbacks as cb
from bench.batchnorm import recompute_statistics
from bench.config import PhaseConfig, Recipe
from bench.data.augment import build_augmenter
from bench.data.batches import make_stream, steps_per_pass
from bench.data.mixing import build_mixer
from bench.data.pipeline import oversample_indices
from bench.freezing import apply_phase_trainability
from bench.monitors import ResumableEarlyStopping, ResumablePlateau
from bench.train.budget import Budget, Replan
from bench.train.checkpoints import Checkpointer, CheckpointFolder, ResumeState
from bench.train.ema import WeightEMA
from bench.train.features import CachedFeatures, cache_features
from bench.train.optim import compile_phase, make_schedule, resolve_jit
from bench.train.result import TrainResult
from bench.train.splits import Splits


class Trainer:
    """Runs a recipe's phases on one model.

    Args:
        model: a :class:`bench.models.FaceModel` from :func:`bench.models.build_model`.
        recipe: the resolved recipe.
        splits: from :func:`bench.train.prepare_splits`.
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
        self.progress, self.first_epoch = progress, 0
        self.pretrained, self.extra_callbacks = pretrained, list(callbacks)
        self.checkpoints = CheckpointFolder(checkpoint_dir) if checkpoint_dir is not None else None
        self.verbose = verbose
        bs, seed = recipe.data.batch_size, recipe.run.seed
        augmenter = build_augmenter(recipe.data.augment, seed)
        mixer = build_mixer(recipe.data.mix, seed)
        common = dict(
            batch_size=bs, weights=splits.class_weights, shuffle=True, seed=seed, oversample=recipe.data.oversample
        )
        common["targets"] = splits.t_train  # FER+ vote distributions (crossentropy mode), else one-hot labels
        self.fixed_steps = recipe.run.steps_per_epoch or None
        # Epochs of N batches: the stream repeats (reshuffled each pass) instead of ending.
        common["repeat"] = bool(self.fixed_steps)
        self.train_aug = make_stream(splits.x_train, splits.y_train, augmenter=augmenter, mixer=mixer, **common)
        self.train_plain = make_stream(splits.x_train, splits.y_train, augmenter=None, **common)
        self.val_x = make_stream(splits.x_val, splits.y_val, batch_size=max(bs, 256), inputs_only=True)
        n_train = len(oversample_indices(splits.y_train, recipe.data.oversample, seed))
        self.steps_per_epoch = self.fixed_steps or steps_per_pass(n_train, bs, shuffle=True)
        self.timer = cb.StepTimer(bs, steps_per_execution=recipe.run.steps_per_execution)
        self.validation = cb.ValidationMetrics(self.val_x, splits.y_val)
        self.cached: CachedFeatures | None = None  # the current head-only phase's features, if cached
        self.jit = resolve_jit(recipe)
        # Under XLA (``run.jit_compile``; by default under JAX) a rebuilt step costs tens of seconds, a share
        # of a short budget a re-plan cannot win back on a machine to itself: the plan stays the first epoch's.
        epochs = [p.epochs for p in recipe.phases]
        self.budget = Budget(recipe.run.budget_minutes, epochs, replanning=not self.jit)
        self.phase_start = 0  # the first epoch of the phase being trained
        self._progress_cb: cb.Progress | None = None
        self._resume_monitors: dict | None = None
        self.ema: WeightEMA | None = None  # the current phase's weight average (phases.N.ema_decay)

    def _augmented(self, phase: PhaseConfig) -> bool:
        """Whether the phase trains on the augmented (and mixed) stream."""
        data = self.recipe.data
        return phase.augment and (data.augment.enabled or bool(data.mix.mixup_alpha or data.mix.cutmix_alpha))

    def _cacheable(self, phase: PhaseConfig) -> bool:
        """Head-only phases without augmentation see the same backbone features every epoch."""
        return self.recipe.run.cache_features and phase.train == "head" and not self._augmented(phase)

    @property
    def plan(self) -> list[int]:
        """Epochs per phase: the recipe's, a resumed run's checkpoint's, or the budget's re-fitted plan."""
        return self.budget.plan

    @property
    def _target(self) -> keras.Model:
        """What ``fit`` trains: the head alone on cached features, or the whole model."""
        return self.model.head if self.cached is not None else self.model

    def _prepare_phase(self, phase: PhaseConfig) -> None:
        self.cached = None
        if self._cacheable(phase):
            self.cached = cache_features(self.model, self.splits, self.recipe, self.fixed_steps)

    def _compile(self, phase: PhaseConfig, epochs: int) -> None:
        compile_phase(
            self._target,
            phase,
            steps_per_epoch=self.steps_per_epoch,
            epochs=epochs,
            jit_compile=self.jit,
            steps_per_execution=self.recipe.run.steps_per_execution,
        )

    def _monitors(self, phase: PhaseConfig) -> dict:
        """Early stopping (which also keeps the best epoch) and the plateau's rate cuts, by name; a phase
        resumed mid-way continues their counters and best epoch (:mod:`bench.monitors`), once."""
        monitor = self.recipe.run.monitor
        patience = phase.early_stopping_patience or 10**9  # 0 = no early stop, but still keep the best epoch
        resumed, self._resume_monitors = self._resume_monitors or {}, None
        monitors = {
            "early_stopping": ResumableEarlyStopping(
                monitor=monitor,
                mode="min" if monitor == "val_loss" else "max",
                patience=patience,
                restore_best_weights=True,
                resume=resumed.get("early_stopping"),
                load_best=self.checkpoints.best_weights_loader(self.model, self._target)
                if self.checkpoints is not None
                else None,
            )
        }
        if phase.reduce_on_plateau:
            monitors["plateau"] = ResumablePlateau(
                monitor="val_loss",
                factor=phase.plateau_factor,
                patience=phase.plateau_patience,
                min_lr=phase.min_lr,
                resume=resumed.get("plateau"),
            )
        return monitors

    def _callbacks(self, phase: PhaseConfig, phase_index: int, replan: bool = True):
        cbs = [
            *([self.ema] if self.ema is not None else []),  # first: the epoch-end callbacks see the average
            cb.NanGuard(self.recipe.run.steps_per_execution),
            self.cached.validation if self.cached is not None else self.validation,
            cb.LearningRate(),
            self.timer,
            *(monitors := self._monitors(phase)).values(),
        ]
        if self.budget.limited:
            cbs.append(cb.Deadline(self.budget))
            if replan:  # not while calibrating: the first epoch's plan is _calibrate's
                follow = functools.partial(self._follow_plan, phase, phase_index)
                replanner = cb.Replanner(self.budget, phase_index, self.phase_start, follow, self._epoch_seconds)
                cbs.append(replanner)
        if self.progress is not None:
            self._progress_cb = cb.Progress(
                self.progress,
                phase=phase.name,
                epochs=sum(self.plan),
                steps=self.steps_per_epoch,
                timer=self.timer,
                start=self.budget.started,
                start_epoch=self.first_epoch,
                deadline=self.budget.deadline,
                steps_per_execution=self.recipe.run.steps_per_execution,
            )
            cbs.append(self._progress_cb)
        if self.checkpoints is not None:
            cbs.append(
                Checkpointer(
                    self.checkpoints,
                    phase_index,
                    self.plan,
                    target=self.model,
                    train_seconds=self.budget.spent,
                    # not the budget's one-epoch calibration fit: its monitors, like Keras', end with it
                    monitors=monitors if replan else None,
                    ema=self.ema,
                )
            )
        return cbs + self.extra_callbacks

    def _fit(self, phase, phase_index, start, end, replan=True):
        callbacks = self._callbacks(phase, phase_index, replan)
        if self.cached is not None:
            data = self.cached.train
        else:
            data = self.train_aug if self._augmented(phase) else self.train_plain
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

    def run(
        self, resume_state: ResumeState | None = None, logged_epochs: dict[str, dict[int, float]] | None = None
    ) -> TrainResult:
        """Train every phase in order with one continuous epoch counter; a resumed run (``resume_state``)
        continues where its checkpoint stopped, and its result is completed with the epochs an earlier
        process trained from ``logged_epochs`` (key -> epoch -> value, the tracking store's curves)."""
        phases, budget = self.recipe.phases, self.budget
        # A resumed run continues its plan and its budget: the training time its checkpoints recorded is spent.
        if resume_state is None:
            budget.start()
        else:
            budget.start(resume_state.plan, resume_state.train_seconds or 0.0)
        plan = budget.plan  # one list for the whole run: re-planning changes it in place
        result = TrainResult(self.model, planned_epochs=[p.epochs for p in phases])
        result.budget_hit = budget.spent_at_start()
        epoch, first_phase, phase_start = resume_state.position() if resume_state else (0, 0, 0)
        self.first_epoch = epoch
        # phase_starts[i] is always phase i's start (the plots name phases by position), resumed or not
        result.phase_starts = [sum(plan[:i]) for i in range(first_phase)]
        result.actual_epochs = [plan[i] if i < first_phase else 0 for i in range(len(phases))]
        ended_in = min(first_phase, len(phases) - 1)  # the phase training ended in
        for i in range(first_phase, len(phases)):
            phase, ended_in = phases[i], i
            epoch = max(epoch, phase_start)
            result.phase_starts.append(epoch)
            if not result.budget_hit:  # else a resume whose budget was already spent: nothing to train
                resumed = resume_state if resume_state and epoch > phase_start else None
                if self._start_phase(phase, i, resumed) is False:
                    result.optimizer_restarted = True
            begin = phase_start  # a resumed phase counts the epochs it ran before the interruption too
            if budget.limited and i == 0 and epoch == 0:
                self._calibrate(phase, result)
                epoch = 1
            if epoch < phase_start + plan[i] and not result.budget_hit:
                self.phase_start = phase_start
                hist, hit = self._fit(phase, i, epoch, phase_start + budget.cap(i))
                self._merge(result, hist)
                epoch += len(hist.epoch)
                result.budget_hit |= hit
            result.actual_epochs[i] = epoch - begin
            phase_start += plan[i]
            if result.budget_hit:
                break
        self.cached = None
        result.end_epoch = epoch
        # a resumed run's whole training time: the parts before the resume are in its checkpoint
        result.train_seconds = budget.spent()
        if self.recipe.model.batchnorm_stats == "recomputed":
            self._recompute_batchnorm(phases[ended_in], result)
        result.images_per_second = self.timer.images_per_second
        result.input_wait_fraction = self.timer.input_wait_fraction
        result.planned_epochs = list(plan) if budget.limited else result.planned_epochs
        result.replans = budget.replans
        if resume_state is not None:
            resume_state.add_earlier_epochs(result, logged_epochs or {})
        result.train_passes = self.passes(sum(result.actual_epochs))
        return result

    def _recompute_batchnorm(self, last_phase: PhaseConfig, result: TrainResult) -> None:
        """``model.batchnorm_stats = "recomputed"``: the BatchNorm layers the last phase trained get
        statistics from the clean training images. Its trainability is set again first: a resumed run
        with nothing left to train never started a phase, and a fresh model has every layer trainable."""
        apply_phase_trainability(self.model, last_phase.train, last_phase.band, pretrained=self.pretrained)
        tic = time.perf_counter()
        seed = self.recipe.run.seed
        result.batchnorm_recomputed = recompute_statistics(self.model, self.splits.x_train, seed=seed)
        result.batchnorm_seconds = time.perf_counter() - tic

    def _start_phase(self, phase: PhaseConfig, index: int, resume_state: ResumeState | None = None) -> bool | None:
        """Freeze and unfreeze for the phase, cache its features if it may, compile it. A phase resumed
        mid-way (``resume_state``) continues the optimizer its last checkpoint saved (schedule position,
        moments, rate) and its early stopping and plateau counters: whether the optimizer could be
        continued, or None when there was nothing to continue."""
        apply_phase_trainability(self.model, phase.train, phase.band, pretrained=self.pretrained)
        self._prepare_phase(phase)
        self._compile(phase, self.plan[index])
        self.ema = WeightEMA(phase.ema_decay) if phase.ema_decay else None
        if resume_state is None or self.checkpoints is None:
            return None
        if self.ema is not None:  # the checkpoint's weights are the average; the raw ones are beside them
            self.checkpoints.restore_ema(resume_state, self.ema, self._target)
        self._resume_monitors = resume_state.monitors  # for this phase's first fit
        return self.checkpoints.restore_optimizer(self._target, resume_state)

    def _calibrate(self, phase: PhaseConfig, result: TrainResult) -> None:
        """Train the first epoch, time it, and let the budget shrink the plan so every phase fits.

        The rescaled schedule replaces the optimizer's in place (its moments and step count are kept)."""
        tic = time.perf_counter()
        self.phase_start = 0
        hist, hit = self._fit(phase, 0, 0, 1, replan=False)
        self._merge(result, hist)
        wall = time.perf_counter() - tic
        if self.budget.calibrate(self._epoch_seconds(wall), wall, recompiles=self.jit):
            # an unchanged plan keeps its schedule and its compiled step
            self._target.optimizer.learning_rate = make_schedule(phase, self.steps_per_epoch, self.plan[0])
            self._target.train_function = None
        if self.checkpoints is not None and self.checkpoints.has_epoch():
            # epoch 1's checkpoint holds the plan before this fit (and, were the phase over, its end as
            # the position): a resume must get the shrunk plan and continue after epoch 1
            state = replace(self.checkpoints.state(), plan=tuple(self.plan), next_epoch=1)
            self.checkpoints.write_state(state)
        if hit:
            result.budget_hit = True

    def _follow_plan(self, phase: PhaseConfig, index: int, done: int, decision: Replan) -> bool:
        """Follow the budget's re-fitted plan after ``done`` epochs of phase ``index``; whether the training
        graph was rebuilt (the Replanner then leaves the next epoch untimed).

        A cosine schedule is replaced by the one for the new length, read at the current step (the
        optimizer's moments and step count are kept), so the rate steps to where the new schedule is at
        this point; that needs a new training graph: a few seconds on a CPU, tens under XLA."""
        retraced = False
        if decision.resized and phase.schedule == "cosine" and done < self.plan[index]:
            self._target.optimizer.learning_rate = make_schedule(phase, self.steps_per_epoch, self.plan[index])
            self._target.make_train_function(force=True)
            retraced = True
        if decision.replanned and self._progress_cb is not None:
            self._progress_cb.epochs = sum(self.plan)
        return retraced

    def passes(self, epochs: int) -> float:
        """How many times ``epochs`` epochs go over the training split. An under-trained row on a
        leaderboard (say, 0.7 passes for a slow backbone in a short budget) is then visible at a glance."""
        n = max(1, len(self.splits.y_train))
        per_batch = min(self.recipe.data.batch_size, n)  # a split smaller than a batch is one short batch
        return self.steps_per_epoch * epochs * per_batch / n

    def _epoch_seconds(self, epoch_wall: float) -> float:
        """What one more epoch will cost, from an epoch that also traced a graph: the last epoch's
        steady-state steps plus a validation pass.

        That epoch's wall time also holds graph tracing and start-up stalls (up to half of it for a
        short epoch), which made the plan shrink too far and left budget unused; steps before it ran
        at the machine's speed then, not now."""
        per_step = self.timer.recent_seconds_per_step(self.steps_per_epoch)
        if not math.isfinite(per_step):
            return epoch_wall
        validation = self.cached.validation if self.cached is not None else self.validation
        return min(epoch_wall, per_step * self.steps_per_epoch + validation.seconds)

    @staticmethod
    def _merge(result: TrainResult, hist) -> None:
        for key, values in hist.history.items():
            result.history.setdefault(key, []).extend(float(v) for v in values)
        result.history.setdefault("epoch", []).extend(hist.epoch)
