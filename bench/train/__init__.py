"""Training, one job per module: ``splits`` (what a run trains on), ``optim`` (optimizers, schedules,
the plan a budget fits), ``features`` (the head-only feature cache), ``trainer`` (the phase loop),
``budget`` (the wall-clock budget the trainer owns), ``result`` (what training returns), ``checkpoints``
(the checkpoint folder and what ``--resume`` continues from), ``build`` (seeding, precision, the model a
recipe asks for) and ``fit`` (the one way a recipe is trained). Knows nothing of MLflow or Optuna."""

from bench.train.build import build_for_recipe, resolve_precision, seed_everything
from bench.train.checkpoints import CheckpointFolder, ResumeState
from bench.train.features import CACHE_LIMIT_BYTES, CachedFeatures, cache_features
from bench.train.fit import Fit
from bench.train.optim import compile_phase, fit_plan, make_optimizer, make_schedule
from bench.train.result import TrainResult
from bench.train.splits import Splits, prepare_splits
from bench.train.trainer import Trainer

__all__ = [
    "CACHE_LIMIT_BYTES",
    "CachedFeatures",
    "CheckpointFolder",
    "Fit",
    "Splits",
    "TrainResult",
    "Trainer",
    "build_for_recipe",
    "cache_features",
    "compile_phase",
    "fit_plan",
    "make_optimizer",
    "make_schedule",
    "prepare_splits",
    "resolve_precision",
    "ResumeState",
    "seed_everything",
]
