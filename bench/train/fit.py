"""One way to fit a recipe: what ``bench run``, every ``bench tune`` trial and ``tune --final`` train.

:meth:`Fit.build` seeds and builds the model and the splits a resolved recipe asks for; the caller may
then look at them (log parameters, load a checkpoint) before :meth:`Fit.train` runs the phases. Tracking
and pruning attach as callbacks, so this module knows nothing of MLflow or Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.config import Recipe
from bench.data.dataset import FerData
from bench.devices import use_devices
from bench.models import FaceModel, ModelSpec
from bench.train.build import build_for_recipe
from bench.train.checkpoints import ResumeState
from bench.train.result import TrainResult
from bench.train.splits import Splits, prepare_splits
from bench.train.trainer import Trainer


@dataclass
class Fit:
    """A resolved recipe with the model and the data it trains on."""

    recipe: Recipe
    model: FaceModel
    spec: ModelSpec
    precision: str  # the Keras dtype policy the model was built under
    splits: Splits
    devices: int = 1  # how many local devices it trains on, data-parallel (bench.devices)

    @classmethod
    def build(cls, recipe: Recipe, data: FerData) -> Fit:
        """Set the devices it trains on (``run.devices``: Keras' distribution, before any variable exists),
        seed, build the recipe's model (``model.backbone`` + ``model.head``) and cut its splits."""
        devices = use_devices(recipe)
        model, spec, precision = build_for_recipe(recipe, data.class_names)
        return cls(recipe, model, spec, precision, prepare_splits(data, recipe), devices)

    def train(
        self,
        *,
        callbacks=(),
        progress=None,
        checkpoint_dir: Path | None = None,
        verbose: int = 0,
        resume_state: ResumeState | None = None,
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
        return trainer.run(resume_state, logged_epochs)
