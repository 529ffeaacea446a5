"""Training, one job per module: ``splits`` (what a run trains on), ``optim`` (optimizers, schedules,
the budget's plan), ``features`` (the head-only feature cache), ``trainer`` (the phase loop), ``checkpoints`` (what
``--resume`` continues from), ``build``
(seeding, precision, the model a recipe asks for) and ``fit`` (the one way a recipe is trained).
Knows nothing of MLflow or Optuna."""

from bench.train.build import build_for_recipe, resolve_precision, seed_everything
from bench.train.checkpoints import read_resume_state, resume_position
from bench.train.features import CACHE_LIMIT_BYTES, CachedFeatures, cache_features
from bench.train.fit import Fit, add_earlier_epochs
from bench.train.optim import compile_phase, fit_plan, make_optimizer, make_schedule
from bench.train.splits import Splits, prepare_splits
from bench.train.trainer import Trainer, TrainResult

__all__ = [
    "CACHE_LIMIT_BYTES",
    "CachedFeatures",
    "Fit",
    "Splits",
    "TrainResult",
    "Trainer",
    "add_earlier_epochs",
    "build_for_recipe",
    "cache_features",
    "compile_phase",
    "fit_plan",
    "make_optimizer",
    "make_schedule",
    "prepare_splits",
    "read_resume_state",
    "resolve_precision",
    "resume_position",
    "seed_everything",
]
