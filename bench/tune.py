"""``bench tune``: Optuna search over class weights, learning rates and regularization.

The only module that imports optuna. The search space is data (the recipe's ``[tune.<name>]``
tables, each with the recipe ``path`` it sets); :func:`suggest` turns it into values for one trial.
Trials are nested MLflow runs under one parent run per study (glue written here: Optuna's
MLflowCallback misbehaves with nested runs and parallel workers). The objective is validation
macro-F1, never the test split (:func:`trial_score`).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import tracking as trk
from bench.config import Recipe, apply_override, from_dict
from bench.data.dataset import FerData
from bench.errors import BenchError, Interrupted
from bench.recipe_io import SPEED_FIELDS, to_dict, to_toml

TUNED_DIR = Path("experiments") / "tuned"


@dataclass(frozen=True)
class Param:
    """One searched value: a recipe ``path``; a float/int range (``log`` for log-uniform) or ``choices``."""

    name: str
    path: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None


def default_space(recipe: Recipe, head: str) -> dict[str, dict]:
    """Each phase's learning rate (log-uniform, /10 to x10), the class-weight exponent (0 = none,
    1 = balanced, up to 1.5), boosts for disgust and fear (1-5), label smoothing (0-0.2) and head dropout."""
    space: dict[str, dict] = {}
    for i, phase in enumerate(recipe.phases):
        lr = phase.learning_rate
        space[f"lr_{phase.name}"] = {"path": f"phases.{i}.learning_rate", "low": lr / 10, "high": lr * 10, "log": True}
    space["class_weight_power"] = {"path": "class_weights.power", "low": 0.0, "high": 1.5}
    space["boost_disgust"] = {"path": "class_weights.boost.disgust", "low": 1.0, "high": 5.0}
    space["boost_fear"] = {"path": "class_weights.boost.fear", "low": 1.0, "high": 5.0}
    space["label_smoothing"] = {"path": "phases.*.label_smoothing", "low": 0.0, "high": 0.2}
    space["head_dropout"] = {"path": f"model.head_options.{head}.dropout", "low": 0.1, "high": 0.6}
    return space


def search_space(recipe: Recipe, head: str) -> list[Param]:
    """The default space merged with the recipe's ``[tune.<name>]`` tables, validated.

    A table named like a default entry changes it (``--set tune.boost_fear.high=3``); ``enabled = false``
    drops an entry; ``use_defaults = false`` in ``[tune]`` keeps only the recipe's own entries.
    """
    own = dict(recipe.tune)
    use_defaults = own.pop("use_defaults", True)
    raw = default_space(recipe, head) if use_defaults else {}
    for name, spec in own.items():
        raw[name] = {**raw.get(name, {}), **spec} if isinstance(spec, dict) else spec
    params = []
    for name, spec in raw.items():
        if not isinstance(spec, dict) or "path" not in spec:
            raise BenchError(f"tune.{name} must be a table with path and low/high or choices; received {spec!r}")
        unknown = set(spec) - {"path", "low", "high", "log", "integer", "choices", "enabled"}
        if unknown:
            raise BenchError(
                f"tune.{name}: unknown key {sorted(unknown)[0]}; accepted: path, low, high, log, "
                "integer, choices, enabled"
            )
        if not spec.get("enabled", True):
            continue
        if "choices" in spec:
            params.append(Param(name, spec["path"], choices=tuple(spec["choices"])))
            continue
        low, high = spec.get("low"), spec.get("high")
        if not isinstance(low, int | float) or not isinstance(high, int | float) or low > high:
            raise BenchError(f"tune.{name}: needs numbers low <= high; received low={low!r}, high={high!r}")
        if spec.get("log") and low <= 0:
            raise BenchError(f"tune.{name}: log = true needs low > 0; received low={low}")
        params.append(
            Param(name, spec["path"], float(low), float(high), bool(spec.get("log")), bool(spec.get("integer")))
        )
    return params


def suggest(trial, space: list[Param]) -> dict[str, Any]:
    """The whole search space as a function of the trial: name -> value."""
    values = {}
    for p in space:
        if p.choices is not None:
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.integer:
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return values


def apply_values(recipe: Recipe, space: list[Param], values: dict[str, Any]) -> Recipe:
    """A new recipe with the trial's values set (validated like ``--set``)."""
    raw = to_dict(recipe)
    for p in space:
        value = values[p.name]
        text = repr(value) if not isinstance(value, str) else f'"{value}"'
        apply_override(raw, f"{p.path}={'true' if value is True else 'false' if value is False else text}")
        if p.path == "class_weights.power":
            raw["class_weights"]["scheme"] = "power"
    return from_dict(Recipe, raw)


def without_speed_settings(recipe: Recipe) -> Recipe:
    """``recipe`` with its run-table :data:`~bench.recipe_io.SPEED_FIELDS` at their defaults: the recipe a
    study writes says what was tuned, not the tuning machine's steps_per_execution and thread counts. The
    BatchNorm kernel (``model.batchnorm``) stays as the recipe chose it: ``auto`` is no machine's setting, it
    picks the kernel on whichever backend the written recipe runs."""
    names = [path.removeprefix("run.") for path in SPEED_FIELDS if path.startswith("run.")]
    default = type(recipe.run)()
    return replace(recipe, run=replace(recipe.run, **{name: getattr(default, name) for name in names}))


class _PruningCallback:
    """Reports validation macro-F1 every epoch and stops a trial the pruner gives up on."""

    def __new__(cls, trial):
        import keras
        import optuna

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get("val_macro_f1")
                if value is None or not math.isfinite(value):
                    return
                trial.report(value, step=epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch} (val macro-F1 {value:.4f})")

        return Callback()


def _sampler(name: str, seed: int):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed) if name == "random" else optuna.samplers.TPESampler(seed=seed)


def _pruner(name: str):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


@dataclass(frozen=True)
class TuneRequest:
    """A resolved recipe (see :mod:`bench.plan`: backbone, head, data, experiment) and the study's settings."""

    recipe: Recipe
    trials: int
    study: str
    storage: str | None = None
    timeout_minutes: float | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    tracking_uri: str | None = None
    out_dir: Path = TUNED_DIR
    on_trial: Callable[[dict], None] | None = None  # each finished trial's :func:`trial_status`
    progress: Callable[[dict], None] | None = None  # the running trial's epochs, see bench.callbacks.Progress
    command: str = "the same command"  # how to continue after Ctrl-C, as the CLI was called


def default_storage() -> str:
    Path(trk.DEFAULT_DIR).mkdir(exist_ok=True)
    return f"sqlite:///{Path(trk.DEFAULT_DIR).resolve() / 'optuna.db'}"


def trial_score(fit, result) -> float:
    """A trial's objective: its best epoch's validation macro-F1 as it trained — or, when the recipe
    recomputes the BatchNorm statistics after training (``model.batchnorm_stats``), the validation
    macro-F1 of the model it ships (the restored epoch with the recomputed statistics). Scoring those
    trials on the moving statistics would favour settings the moving statistics suit (weaker
    augmentation), not the ones that make the best shipped model."""
    if fit.recipe.model.batchnorm_stats != "recomputed":
        return max(result.history["val_macro_f1"])
    from bench.callbacks import macro_f1
    from bench.runner import predict_probs

    return macro_f1(fit.splits.y_val, predict_probs(fit.model, fit.splits.x_val).argmax(1))


def _objective(req: TuneRequest, data: FerData, space: list[Param], experiment_id: str, parent_id: str):
    import keras
    import optuna

    from bench.train import Fit

    names = {"backbone": req.recipe.model.backbone, "head": req.recipe.model.head}

    def objective(trial) -> float:
        values = suggest(trial, space)
        recipe = apply_values(req.recipe, space, values)
        tags = {"mlflow.parentRunId": parent_id, "optuna.study": req.study, "optuna.trial": str(trial.number), **names}
        try:
            with trk.TrackedRun(experiment_id, run_name=f"trial-{trial.number}", tags=tags) as run:
                run.params({**values, **names, "trial": trial.number})
                fit = Fit.build(recipe, data)
                result = fit.train(callbacks=[run.epoch_callback(), _PruningCallback(trial)], progress=req.progress)
                score = trial_score(fit, result)
                run.metrics({"val_macro_f1_best": score})
                return score
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("failure", f"{exc.__class__.__name__}: {exc}"[:1000])
            raise
        finally:
            keras.backend.clear_session()

    return objective


def trial_status(study, trial, total: int) -> dict[str, Any]:
    """What one finished trial did and where the study stands: the line ``bench tune`` prints per trial."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value) if complete else None
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "params": dict(trial.params),
        "failure": trial.user_attrs.get("failure"),
        "last_step": trial.last_step,
        "best_value": best.value if best else None,
        "best_number": best.number if best else None,
        "done": _counted(study, running=False),
        "total": total,
    }


def run_study(req: TuneRequest, data: FerData) -> dict[str, Any]:
    """Run (or continue) a study; returns the best trial's value and params and the tuned recipe path.

    Optuna's own log stays quiet (a failed trial is a warning with a traceback, Ctrl-C one of ~200
    lines): ``req.on_trial`` gets one status per finished trial, failures with their reason, instead."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = search_space(req.recipe, req.recipe.model.head)
    if not space:
        raise BenchError("the search space is empty: every [tune] entry is disabled")
    storage = req.storage or default_storage()
    study = _open_study(req, storage)
    uri = trk.connect(req.tracking_uri)
    experiment_id = trk.ensure_experiment(req.recipe.run.experiment, uri)
    parent_id = _parent_run(study, experiment_id, req)
    remaining = max(0, req.trials - _counted(study, running=False))

    def after_trial(study, trial) -> None:
        if req.on_trial is not None:
            req.on_trial(trial_status(study, trial, req.trials))
        if _counted(study, running=True) >= req.trials:
            study.stop()

    try:
        if remaining:
            study.optimize(
                _objective(req, data, space, experiment_id, parent_id),
                n_trials=remaining,
                timeout=req.timeout_minutes * 60 if req.timeout_minutes else None,
                catch=(Exception,),
                callbacks=[after_trial],
                gc_after_trial=True,
            )
    except KeyboardInterrupt as exc:
        trk.set_run_status(parent_id, "KILLED", f"interrupted (Ctrl-C); continue with {req.command}")
        raise Interrupted(
            f"interrupted: study {req.study} keeps its {_counted(study, running=False)} finished trials; its "
            f"parent run {parent_id} is KILLED; continue with `{req.command}`"
        ) from exc
    return _finish(study, req, space, parent_id)


def _open_study(req: TuneRequest, storage: str, attempts: int = 4):
    """Create or load the study; retried because workers started together on a fresh storage race to
    create its tables (seen with SQLite: a UNIQUE constraint on alembic_version)."""
    import time

    import optuna

    for attempt in range(attempts):
        try:
            return optuna.create_study(
                study_name=req.study,
                storage=storage,
                direction="maximize",
                sampler=_sampler(req.sampler, req.seed),
                pruner=_pruner(req.pruner),
                load_if_exists=True,
            )
        except Exception as exc:
            if attempt + 1 == attempts:
                raise BenchError(f"cannot open the Optuna storage {storage}: {str(exc).splitlines()[0][:200]}") from exc
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _counted(study, *, running: bool) -> int:
    """Trials that count towards ``--trials``: complete, pruned, failed with a reason (and, for other
    workers, running). A trial cut short by Ctrl-C is not counted, so a rerun replaces it."""
    import optuna

    states = optuna.trial.TrialState
    count = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (states.COMPLETE, states.PRUNED) or (running and trial.state == states.RUNNING):
            count += 1
        elif trial.state == states.FAIL and "failure" in trial.user_attrs:
            count += 1
    return count


def _parent_run(study, experiment_id: str, req: TuneRequest) -> str:
    """The study's parent MLflow run, created by the first worker and shared through the study."""
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent:
        trk.set_run_status(parent, "RUNNING")
        return parent
    params = {"backbone": req.recipe.model.backbone, "head": req.recipe.model.head, "recipe": req.recipe.name}
    params.update(trials=req.trials, sampler=req.sampler, pruner=req.pruner, study=req.study)
    with trk.TrackedRun(
        experiment_id, run_name=f"study-{req.study}", tags={"bench.kind": "study", "optuna.study": req.study}
    ) as run:
        run.params(params)
    study.set_user_attr("mlflow_parent_run_id", run.run_id)
    trk.set_run_status(run.run_id, "RUNNING")
    return run.run_id


def _finish(study, req: TuneRequest, space: list[Param], parent_id: str) -> dict[str, Any]:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    summary = {
        "study": req.study,
        "n_complete": len(complete),
        "parent_run_id": parent_id,
        "n_pruned": len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))),
        "n_failed": len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))),
    }
    if not complete:
        trk.set_run_status(parent_id, "FAILED", "no trial completed")
        raise BenchError(
            f"study '{req.study}': no trial completed ({summary['n_failed']} failed, "
            f"{summary['n_pruned']} pruned); see the trial runs in MLflow for reasons"
        )
    best = study.best_trial
    tuned = replace(
        without_speed_settings(apply_values(req.recipe, space, best.params)),
        name=req.study,
        description=f"tuned by bench tune (study {req.study}, "
        f"best val macro-F1 {best.value:.4f}, trial {best.number}) from recipe {req.recipe.name}",
    )
    (path := Path(req.out_dir) / f"{req.study}.toml").parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(tuned))
    with tempfile.TemporaryDirectory() as tmp:
        files = [path, *_study_plots(study, Path(tmp))]
        trk.log_to_run(
            parent_id,
            {"best_val_macro_f1": best.value, "n_complete": len(complete)},
            {f"best.{k}": v for k, v in best.params.items()},
            files,
        )
    summary.update(
        best_value=best.value, best_params=best.params, best_trial=best.number, recipe_path=str(path), tuned=tuned
    )
    return summary


def _study_plots(study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances and slice plot (skipped when too few trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    paths = []
    for name, fn in (
        ("optimization_history", ovm.plot_optimization_history),
        ("param_importances", ovm.plot_param_importances),
        ("slice", ovm.plot_slice),
    ):
        try:
            result = fn(study)
            fig = (result.flat[0] if hasattr(result, "flat") else result).figure
            fig.set_size_inches(12, 5)
            fig.tight_layout()
            fig.savefig(folder / f"{name}.png", dpi=100)
            paths.append(folder / f"{name}.png")
        except Exception:  # importances need >= 2 complete trials with varied values
            pass
        finally:
            plt.close("all")
    return paths
