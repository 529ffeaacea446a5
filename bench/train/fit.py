"""One way to fit a recipe: what ``bench run``, every ``bench tune`` trial and ``tune --final`` train.

:meth:`Fit.build` seeds and builds the model and the splits a resolved recipe asks for; the caller may
then look at them (log parameters, load a checkpoint) before :meth:`Fit.train` runs the phases. Tracking
and pruning attach as callbacks, so this module knows nothing of MLflow or Optuna.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.config import Recipe
from bench.data.dataset import FerData
from bench.models import FaceModel, ModelSpec
from bench.train.build import build_for_recipe
from bench.train.splits import Splits, prepare_splits
from bench.train.trainer import Trainer, TrainResult


@dataclass
class Fit:
    """A resolved recipe with the model and the data it trains on."""

    recipe: Recipe
    model: FaceModel
    spec: ModelSpec
    precision: str  # the Keras dtype policy the model was built under
    splits: Splits

    @classmethod
    def build(cls, recipe: Recipe, data: FerData) -> Fit:
        """Seed, build the recipe's model (``model.backbone`` + ``model.head``) and cut its splits."""
        model, spec, precision = build_for_recipe(recipe, data.class_names)
        return cls(recipe, model, spec, precision, prepare_splits(data, recipe))

    def train(
        self,
        *,
        callbacks=(),
        progress=None,
        checkpoint_dir: Path | None = None,
        verbose: int = 0,
        resume_state: dict | None = None,
        logged_epochs: dict[str, dict[int, float]] | None = None,
    ) -> TrainResult:
        """Run every phase (from ``resume_state`` when resuming); see :class:`bench.train.Trainer` for
        the arguments. ``logged_epochs`` (key -> epoch -> value) completes a resumed run's history."""
        trainer = Trainer(
            self.model,
            self.recipe,
            self.splits,
            pretrained=self.recipe.model.weights != "none",
            callbacks=callbacks,
            checkpoint_dir=checkpoint_dir,
            verbose=verbose,
            progress=progress,
        )
        result = trainer.run(resume_state)
        if resume_state is not None:
            add_earlier_epochs(result, resume_state, logged_epochs or {})
            result.train_passes = trainer.passes(sum(result.actual_epochs))
        return result


def add_earlier_epochs(result: TrainResult, state: dict, logged: dict[str, dict[int, float]]) -> None:
    """Complete a mid-training resume's TrainResult with the epochs an earlier process trained, from the
    run's logged per-epoch metrics (``logged``: key -> epoch -> value): the training curves then cover
    the whole run, and a phase finished before the resume counts the epochs it ran, not its plan (an
    early-stopped phase ran fewer). The epoch checkpoint holds weights, optimizer state and position, not
    the history: MLflow already holds that, so it is not kept twice."""
    first, plan = state["next_epoch"], state["plan"]
    earlier = sorted({epoch for values in logged.values() for epoch in values if epoch < first})
    if not earlier:
        return
    later = len(result.history.get("epoch", []))
    history = {"epoch": earlier + list(result.history.get("epoch", []))}
    for key in set(logged) | (set(result.history) - {"epoch"}):
        before = [logged.get(key, {}).get(epoch, math.nan) for epoch in earlier]
        history[key] = before + list(result.history.get(key, [math.nan] * later))
    result.history = history
    # The phases' starts by the final plan: a budget may have re-planned the resumed phase and later ones
    # (never those before it, so they count the same either way).
    final = result.planned_epochs if len(result.planned_epochs) == len(plan) else plan
    starts = [sum(final[:i]) for i in range(len(final))]
    result.phase_starts = [s for s in starts if s <= history["epoch"][-1]]
    resumed_phase = state["phase"] + (first >= sum(plan[: state["phase"] + 1]))  # as Trainer.run
    for i in range(resumed_phase):  # Trainer.run counts these as planned
        result.actual_epochs[i] = sum(starts[i] <= epoch < starts[i] + final[i] for epoch in earlier)
