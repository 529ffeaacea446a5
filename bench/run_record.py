"""What a run records, by name: every param, metric, tag and artifact ``bench run`` writes to MLflow and
every reader (compare, reports, tune, resume, the benchmarks) reads back, and the file names of a run's
checkpoint folder.

Why one module: these names are the contract between the process that writes a run and every process
that reads it, months later. Stored runs are read back by these exact strings, so each is spelled once,
here, and none may change its value (MMEngine's ``MLflowVisBackend`` builds its keys in one place for the
same reason). The builders below turn a trained run's figures into the named dicts that are logged; they
know nothing of MLflow (only :mod:`bench.tracking` does) and log nothing themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------- params (logged at the start)

BACKBONE, HEAD, WEIGHTS, SEED = "backbone", "head", "weights", "seed"
RECIPE, RECIPE_HASH, IMAGE_SIZE = "recipe", "recipe_hash", "image_size"
DATA_SOURCE, DATA_FINGERPRINT, SPLIT_PROTOCOL = "data_source", "data_fingerprint", "split_protocol"
CLASS_NAMES = "class_names"  # comma-joined; runs logged before it existed are FER2013's seven
DEVICES = "devices"  # how many local devices trained it, data-parallel (the resolved run.devices; 1 before it existed)
RECIPE_PREFIX = "recipe."
"""Every field of the resolved recipe is a param of its own: ``recipe.data.batch_size``, ..."""

CONFIG_KEYS = (BACKBONE, HEAD, RECIPE, RECIPE_HASH, WEIGHTS, IMAGE_SIZE)
"""The params a leaderboard row pools runs by (seeds of one configuration)."""


def fingerprint_param(split: str) -> str:
    """``val_fingerprint`` / ``test_fingerprint``: what a split's images and labels hash to."""
    return f"{split}_fingerprint"


# ----------------------------------------------------------------------------- tags

CHECKPOINT_DIR_TAG = "bench.checkpoint_dir"  # the run's checkpoint folder, absolute: a resume reads it
DATA_PATH_TAG = "bench.data_path"  # the data's absolute path: a resume may start in another folder
LABEL_SET_TAG = "bench.label_set"  # fer2013 or ferplus: bench compare never ranks the two together
TTA_TAG = "bench.tta"  # the evaluation's test-time augmentation (recipe.eval.tta)
KIND_TAG = "bench.kind"  # runs that are not trainings: a leaderboard, a study's parent
KIND_LEADERBOARD, KIND_STUDY = "leaderboard", "study"
FAILURE_REASON_TAG = "failure_reason"  # why a FAILED or KILLED run ended
BATCHNORM_TAG = "batchnorm"  # the BatchNorm kernel built: what "auto" picked on this backend
EPOCHS_PLANNED_TAG, EPOCHS_ACTUAL_TAG = "epochs_planned_per_phase", "epochs_actual_per_phase"
BUDGET_HIT_TAG = "budget_hit"
RESUMED_DEVICES_TAG = "bench.resumed_devices"  # a resumed run's device count (params are written once, at its start)

# ----------------------------------------------------------------------------- metrics

VAL_MACRO_F1 = "val_macro_f1"
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy", VAL_MACRO_F1, "learning_rate")
"""The per-epoch curves (step = the epoch across the whole run); a resume reads them back."""

PARAMS_TOTAL, PARAMS_BACKBONE, PARAMS_HEAD = "params_total", "params_backbone", "params_head"
FIT_SECONDS, TRAIN_IMAGES_PER_SECOND, TRAIN_PASSES = "fit_seconds", "train_images_per_second", "train_passes"
INPUT_WAIT_FRACTION, BUDGET_REPLANS = "input_wait_fraction", "budget_replans"
EPOCHS_PLANNED, EPOCHS_ACTUAL = "epochs_planned", "epochs_actual"
BATCHNORM_RECOMPUTED, BATCHNORM_SECONDS = "batchnorm_layers_recomputed", "batchnorm_recompute_seconds"
FLOPS_PER_IMAGE, LATENCY_P50, LATENCY_P95 = "flops_per_image", "latency_ms_p50", "latency_ms_p95"
KERAS_FILE_MB = "keras_file_mb"
TEMPERATURE = "temperature"  # logged by calibrated runs only
VAL_MACRO_F1_BEST = "val_macro_f1_best"  # a tune trial's objective

COST_METRICS = (PARAMS_TOTAL, FIT_SECONDS, TRAIN_IMAGES_PER_SECOND, LATENCY_P50, FLOPS_PER_IMAGE, TRAIN_PASSES)
"""What a leaderboard row reports of a configuration's cost (the mean over its runs)."""


def split_metric(split: str, name: str) -> str:
    """``test_macro_f1``: an evaluation metric of one split (``val`` or ``test``)."""
    return f"{split}_{name}"


# ----------------------------------------------------------------------------- studies and leaderboards

PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: nests a trial's run under its study's
STUDY_TAG, TRIAL_TAG = "optuna.study", "optuna.trial"
TRIAL_PARAM, BASELINE_PARAM = "trial", "baseline"  # a trial's number; whether it trained the recipe itself
STUDY_PARAMS = ("trials", "sampler", "pruner", "study")  # a study's parent run, beside backbone, head, recipe
BEST_VAL_MACRO_F1, BASELINE_VAL_MACRO_F1 = "best_val_macro_f1", "baseline_val_macro_f1"  # a study's
N_COMPLETE = "n_complete"  # a study's finished trials
BEST_PREFIX, TUNED_RECIPE_TAG = "best.", "tuned_recipe"  # tags on a study's parent run: the best values
N_CONFIGURATIONS = "n_configurations"  # a leaderboard run's rows

# ----------------------------------------------------------------------------- artifacts

RECIPE_ARTIFACT = "recipe.toml"  # the run's resolved recipe: its whole description, logged first
PREDICTIONS_ARTIFACT = "predictions.npz"  # {split}_y_true, {split}_y_prob, class_names: compare pairs on them
MODEL_ARTIFACT = "model.keras"
REPORT_ARTIFACT = "classification_report.txt"
CONFUSION_ARTIFACT, RECALL_ARTIFACT = "confusion_matrix.png", "per_class_recall.png"
CURVES_ARTIFACT, RELIABILITY_ARTIFACT = "training_curves.png", "reliability.png"


def prediction_keys(split: str) -> tuple[str, str]:
    """The arrays of :data:`PREDICTIONS_ARTIFACT` that hold ``split``'s labels and probabilities."""
    return f"{split}_y_true", f"{split}_y_prob"


# ----------------------------------------------------------------------------- the checkpoint folder

WEIGHTS_FILE = "weights.weights.h5"  # the last epoch's weights
STATE_FILE = "state.json"  # the trainer's position, written last: see bench.train.checkpoints.ResumeState
OPTIMIZER_FILE = "optimizer.npz"  # the optimizer's variables at that position
EMA_FILE = "ema.npz"  # a phase with ema_decay: the raw weights behind the average
TRAINED_WEIGHTS_FILE, TRAINED_STATE_FILE = "trained.weights.h5", "trained.json"  # training over, logging not
BEST_WEIGHTS_GLOB = "best-*.weights.h5"


def best_weights_file(phase: int, epoch: int) -> str:
    """Early stopping's best epoch's weights, named by its position (a state names the one it goes with)."""
    return f"best-{phase}-{epoch}.weights.h5"


def holds_checkpoint(folder: Path) -> bool:
    """Whether a checkpoint folder holds anything a resume continues from: the trained model, or an epoch's
    state (a run stopped before its first epoch ended has neither). Here, not only on
    :class:`bench.train.checkpoints.CheckpointFolder`, because a resume that cannot start must say so
    before TensorFlow loads."""
    return (Path(folder) / TRAINED_STATE_FILE).is_file() or (Path(folder) / STATE_FILE).is_file()


# ----------------------------------------------------------------------------- the named figures of a run


def run_params(recipe, spec, splits, data, devices: int = 1) -> dict[str, Any]:
    """The params a fresh run logs first: the whole recipe (``recipe.*``), then the names a leaderboard
    and a resume read (what was trained, on which data and split, with which class weights), and the
    number of ``devices`` it trains on (``recipe.run.devices`` resolved: 0 there means all of them)."""
    from bench.data.dataset import split_fingerprint
    from bench.recipe_io import flatten, recipe_hash, to_dict

    params = flatten(to_dict(recipe), RECIPE_PREFIX)
    params.update(
        {
            BACKBONE: recipe.model.backbone,
            HEAD: recipe.model.head,
            WEIGHTS: recipe.model.weights,
            SEED: recipe.run.seed,
            RECIPE: recipe.name,
            RECIPE_HASH: recipe_hash(recipe),
            IMAGE_SIZE: spec.image_size,
            DATA_SOURCE: data.source,
            DATA_FINGERPRINT: data.fingerprint(),
            fingerprint_param("val"): split_fingerprint(splits.x_val, splits.y_val, splits.class_names),
            fingerprint_param("test"): split_fingerprint(splits.x_test, splits.y_test, splits.class_names),
            SPLIT_PROTOCOL: data.protocol,
            CLASS_NAMES: ",".join(data.class_names),
            DEVICES: devices,
            "n_train": len(splits.y_train),
            "n_val": len(splits.y_val),
            "n_test": len(splits.y_test),
            "n_deduped": splits.n_deduped,
            "class_weights": [round(float(w), 4) for w in splits.class_weights],
        }
    )
    return params


def size_metrics(model) -> dict[str, int]:
    """The parameter counts of a :class:`bench.models.FaceModel`, whole and per part."""
    return {
        PARAMS_TOTAL: model.count_params(),
        PARAMS_BACKBONE: model.backbone.count_params(),
        PARAMS_HEAD: model.head.count_params(),
    }


def training_metrics(result, batchnorm_recomputed: bool) -> dict[str, float]:
    """A :class:`bench.train.TrainResult`'s figures; the BatchNorm recompute's only when the recipe asked
    for it (``model.batchnorm_stats``), then even when no layer qualified (0)."""
    metrics = {
        FIT_SECONDS: result.train_seconds,
        TRAIN_IMAGES_PER_SECOND: result.images_per_second,
        INPUT_WAIT_FRACTION: result.input_wait_fraction,
        EPOCHS_PLANNED: sum(result.planned_epochs),
        EPOCHS_ACTUAL: sum(result.actual_epochs),
        TRAIN_PASSES: result.train_passes,
        BUDGET_REPLANS: result.replans,
    }
    if batchnorm_recomputed:
        metrics.update({BATCHNORM_RECOMPUTED: result.batchnorm_recomputed, BATCHNORM_SECONDS: result.batchnorm_seconds})
    return metrics


def training_tags(result) -> dict[str, Any]:
    """How the epoch plan went, per phase, and whether the wall-clock budget stopped training."""
    return {
        EPOCHS_PLANNED_TAG: result.planned_epochs,
        EPOCHS_ACTUAL_TAG: result.actual_epochs,
        BUDGET_HIT_TAG: result.budget_hit,
    }


def cost_metrics(flops: float | None, latency: tuple[float, float]) -> dict[str, float | None]:
    """The cost figures ``bench profile`` reports, measured on the trained model."""
    return {FLOPS_PER_IMAGE: flops, LATENCY_P50: latency[0], LATENCY_P95: latency[1]}
