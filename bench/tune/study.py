"""A study: its objective, trials as nested MLflow runs under one parent run, and the tuned recipe.

Trials are nested MLflow runs under one parent run per study (glue written here: Optuna's MLflowCallback
misbehaves with nested runs and parallel workers). The objective is validation macro-F1, never the test
split (:func:`trial_score`).

A study never makes a recipe worse: its first trial trains the recipe's own values (the *baseline*,
at the same fidelity as every other trial), and a tuned recipe is written only when a trial beats it.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import run_record as rec
from bench import tracking as trk
from bench.config import Recipe
from bench.data.dataset import FerData
from bench.errors import BenchError, Interrupted
from bench.recipe_io import to_toml
from bench.tune.plots import study_plots
from bench.tune.storage import default_storage, fail_stale, open_storage
from bench.tune_space import (
    TUNED_DIR,
    Param,
    apply_values,
    baseline_params,
    check_study_name,
    head_defaults,
    recipe_values,
    search_space,
    suggest,
    without_speed_settings,
    write_new,
)

BASELINE = "baseline"  # user attribute of the trials that train the recipe's own values
BASELINE_PARAMS = "baseline_params"  # user attribute: the values it was queued with


class _PruningCallback:
    """Reports validation macro-F1 every epoch and stops a trial the pruner gives up on, unless ``prune``
    is false (the baseline: the value every tuned recipe must beat is never cut short)."""

    def __new__(cls, trial, prune: bool = True):
        import keras
        import optuna

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get(rec.VAL_MACRO_F1)
                if value is None or not math.isfinite(value):
                    return
                trial.report(value, step=epoch)
                if prune and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch} (val macro-F1 {value:.4f})")

        return Callback()


def _sampler(name: str, seed: int):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed) if name == "random" else optuna.samplers.TPESampler(seed=seed)


def _pruner(name: str, recipe: Recipe):
    """The study's pruner. The median pruner waits for 3 finished trials and never prunes in the first half
    of the recipe's epochs: regularised trials (augmentation, mixup, EMA) learn more slowly at first, and
    in the first FER2013 study (benchmarks/RESULTS.md#evidence-tune, issue 32) a pruner without that warm-up stopped 5
    of 6 challengers after their first or second of 9 epochs, against the un-regularised baseline's
    early curve."""
    import optuna

    if name == "median":
        warmup = max(1, sum(phase.epochs for phase in recipe.phases) // 2)
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)
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


def trial_score(fit, result) -> float:
    """A trial's objective: its best epoch's validation macro-F1 as it trained — or, when the recipe
    recomputes the BatchNorm statistics after training (``model.batchnorm_stats``), the validation
    macro-F1 of the model it ships (the restored epoch with the recomputed statistics). Scoring those
    trials on the moving statistics would favour settings the moving statistics suit (weaker
    augmentation), not the ones that make the best shipped model."""
    if fit.recipe.model.batchnorm_stats != "recomputed":
        return max(result.history[rec.VAL_MACRO_F1])
    from bench.inference.classifier import predict_probs
    from bench.metrics import macro_f1

    probs = predict_probs(fit.model, fit.splits.x_val)
    return macro_f1(fit.splits.y_val, probs.argmax(1), probs.shape[-1])


def _objective(
    req: TuneRequest, data: FerData, space: list[Param], experiment_id: str, parent_id: str, own: dict[str, Any]
):
    """The study's objective. A baseline trial trains ``req.recipe`` itself, not its values as the space
    holds them (``own`` clipped): what a tuned recipe must beat is the recipe, whatever the space."""
    import keras
    import optuna

    from bench.train import Fit

    names = {rec.BACKBONE: req.recipe.model.backbone, rec.HEAD: req.recipe.model.head}

    def objective(trial) -> float:
        values = suggest(trial, space)
        baseline = bool(trial.user_attrs.get(BASELINE))
        recipe = req.recipe if baseline else apply_values(req.recipe, space, values)
        tags = {rec.PARENT_RUN_TAG: parent_id, rec.STUDY_TAG: req.study, rec.TRIAL_TAG: str(trial.number), **names}
        try:
            with trk.TrackedRun(experiment_id, run_name=f"trial-{trial.number}", tags=tags) as run:
                trial_params = {rec.TRIAL_PARAM: trial.number, rec.BASELINE_PARAM: baseline}
                run.params({**(own if baseline else values), **names, **trial_params})
                fit = Fit.build(recipe, data)
                callbacks = [run.epoch_callback(), _PruningCallback(trial, prune=not baseline)]
                result = fit.train(callbacks=callbacks, progress=req.progress)
                score = trial_score(fit, result)
                run.metrics({rec.VAL_MACRO_F1_BEST: score})
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
        "baseline": bool(trial.user_attrs.get(BASELINE)),
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
    """Run (or continue) a study; returns the best and the baseline trial's values and the tuned recipe's
    path (``None`` when no trial beat the baseline).

    Optuna's own log stays quiet (a failed trial is a warning with a traceback, Ctrl-C one of ~200
    lines): ``req.on_trial`` gets one status per finished trial, failures with their reason, instead."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    check_study_name(req.study)
    head_options = head_defaults(req.recipe.model.head)
    space = search_space(req.recipe, req.recipe.model.head, head_options)
    if not space:
        raise BenchError("the search space is empty: every [tune] entry is disabled")
    own = recipe_values(req.recipe, space, head_options)
    study = _open_study(req, req.storage or default_storage())
    fail_stale(study)
    uri = trk.connect(req.tracking_uri)
    experiment_id = trk.ensure_experiment(req.recipe.run.experiment, uri)
    parent_id = _parent_run(study, experiment_id, req)
    remaining = max(0, req.trials - _counted(study, running=False))
    if remaining:
        _enqueue_baseline(study, baseline_params(space, own))

    def after_trial(study, trial) -> None:
        if req.on_trial is not None:
            req.on_trial(trial_status(study, trial, req.trials))
        fail_stale(study)  # a worker killed since this trial began must not count as running
        if _counted(study, running=True) >= req.trials:
            study.stop()

    try:
        if remaining:
            study.optimize(
                _objective(req, data, space, experiment_id, parent_id, own),
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


def _enqueue_baseline(study, params: dict[str, Any]) -> None:
    """Queue the recipe's own values as the next trial, unless the study already holds that baseline
    (finished, running, queued, or failed with a reason): a rerun of the same study does not repeat it.
    A baseline killed with its worker is queued again (by the stale-trial retry, or here)."""
    import optuna

    states = optuna.trial.TrialState
    for trial in study.get_trials(deepcopy=False):
        held = trial.state != states.FAIL or "failure" in trial.user_attrs
        if trial.user_attrs.get(BASELINE) and held and trial.user_attrs.get(BASELINE_PARAMS, trial.params) == params:
            return
    # the values are kept in the trial's own attributes: what Optuna records of an enqueued trial is internal
    study.enqueue_trial(params, user_attrs={BASELINE: True, BASELINE_PARAMS: params})


def _open_study(req: TuneRequest, storage: str, attempts: int = 4):
    """Create or load the study; retried because workers started together on a fresh storage race to
    create its tables (seen with SQLite: a UNIQUE constraint on alembic_version)."""
    import time

    import optuna

    for attempt in range(attempts):
        try:
            return optuna.create_study(
                study_name=req.study,
                storage=open_storage(storage),
                direction="maximize",
                sampler=_sampler(req.sampler, req.seed),
                pruner=_pruner(req.pruner, req.recipe),
                load_if_exists=True,
            )
        except BenchError:
            raise
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
    params = {rec.BACKBONE: req.recipe.model.backbone, rec.HEAD: req.recipe.model.head, rec.RECIPE: req.recipe.name}
    params.update(zip(rec.STUDY_PARAMS, (req.trials, req.sampler, req.pruner, req.study), strict=True))
    with trk.TrackedRun(
        experiment_id, run_name=f"study-{req.study}", tags={rec.KIND_TAG: rec.KIND_STUDY, rec.STUDY_TAG: req.study}
    ) as run:
        run.params(params)
    study.set_user_attr("mlflow_parent_run_id", run.run_id)
    trk.set_run_status(run.run_id, "RUNNING")
    return run.run_id


def _finish(study, req: TuneRequest, space: list[Param], parent_id: str) -> dict[str, Any]:
    """The study's summary; the tuned recipe written (never over an existing file) only when its best
    trial beats the baseline's value strictly, or the baseline itself failed (diverged, raised)."""
    import optuna

    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == states.COMPLETE]
    summary = {
        "study": req.study,
        "n_complete": len(complete),
        "parent_run_id": parent_id,
        "n_pruned": sum(t.state == states.PRUNED for t in trials),
        "n_failed": sum(t.state == states.FAIL for t in trials),
    }
    if not complete:
        trk.set_run_status(parent_id, "FAILED", "no trial completed")
        raise BenchError(
            f"study '{req.study}': no trial completed ({summary['n_failed']} failed, "
            f"{summary['n_pruned']} pruned); see the trial runs in MLflow for reasons"
        )
    baselines = [t for t in complete if t.user_attrs.get(BASELINE)]
    baseline = max(baselines, key=lambda t: t.value) if baselines else None
    baseline_failed = any(t.user_attrs.get(BASELINE) and "failure" in t.user_attrs for t in trials)
    challengers = [t for t in complete if not t.user_attrs.get(BASELINE)]
    best = max(challengers, key=lambda t: t.value) if challengers else None
    beaten = best is not None and (best.value > baseline.value if baseline else baseline_failed)
    top = best if beaten else study.best_trial
    summary.update(
        best_value=top.value,
        best_params=top.params,
        best_trial=top.number,
        best_is_baseline=bool(top.user_attrs.get(BASELINE)),
        baseline_value=baseline.value if baseline else None,
        baseline_trial=baseline.number if baseline else None,
        baseline_failed=baseline_failed and baseline is None,
        best_other_value=best.value if best else None,  # the best trial that did not train the recipe itself
        beaten=beaten,
        recipe_path=None,
        tuned=None,
    )
    metrics = {rec.BEST_VAL_MACRO_F1: top.value, rec.N_COMPLETE: len(complete)}
    if baseline is not None:
        metrics[rec.BASELINE_VAL_MACRO_F1] = baseline.value
    with tempfile.TemporaryDirectory() as tmp:
        files = study_plots(study, Path(tmp))
        if beaten:
            tuned = replace(
                without_speed_settings(apply_values(req.recipe, space, best.params)),
                name=req.study,
                description=f"tuned by bench tune (study {req.study}, best val macro-F1 {best.value:.4f}, trial "
                f"{best.number}; the recipe's own values {_value(baseline)}) from recipe {req.recipe.name}",
            )
            path = write_new(Path(req.out_dir), req.study, to_toml(tuned))
            summary.update(recipe_path=str(path), tuned=tuned)
            files.insert(0, path)
        params = {f"{rec.BEST_PREFIX}{k}": v for k, v in top.params.items()}
        params[rec.TUNED_RECIPE_TAG] = summary["recipe_path"] or "none"
        trk.log_to_run(parent_id, metrics, params, files)
    return summary


def _value(trial) -> str:
    return f"{trial.value:.4f}" if trial is not None else "failed"
