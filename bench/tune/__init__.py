"""``bench tune``: Optuna search over class weights, learning rates and regularization.

The only package that imports optuna: :mod:`~bench.tune.study` runs a study (objective, trials,
the tuned recipe), :mod:`~bench.tune.storage` keeps it (Optuna's storage, heartbeats), and
:mod:`~bench.tune.plots` draws its figures. :mod:`~bench.tune.cell_queue` lends the same storage to
``bench run --queue``: a matrix's cells as queued trials that workers claim, keep alive and take over.
The search space and the recipes a study makes are pure recipe logic in :mod:`bench.tune_space`,
re-exported here so that callers importing them from ``bench.tune`` keep working."""

from bench.tune.storage import check_storage, default_storage
from bench.tune.study import TuneRequest, run_study, trial_score, trial_status
from bench.tune_space import (
    TUNED_DIR,
    Param,
    apply_values,
    check_study_name,
    default_space,
    has_field,
    recipe_values,
    search_space,
    suggest,
    within,
    without_speed_settings,
)

__all__ = [
    "TUNED_DIR",
    "Param",
    "TuneRequest",
    "apply_values",
    "check_storage",
    "check_study_name",
    "default_space",
    "default_storage",
    "has_field",
    "recipe_values",
    "run_study",
    "search_space",
    "suggest",
    "trial_score",
    "trial_status",
    "within",
    "without_speed_settings",
]
