"""One ``bench run``: fit a resolved recipe, evaluate it and log everything as one MLflow run.

The recipe is the run's whole description (backbone, head, data, experiment, seed, method); it is
logged first, as ``recipe.toml``, and a resume rebuilds the run from it."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import interrupts
from bench import run_record as rec
from bench import tracking as trk
from bench.claims import claim, holds, release
from bench.config import Recipe
from bench.data.dataset import FerData
from bench.errors import BenchError, Interrupted, os_error_text
from bench.metrics import HEADLINE_METRICS, classification_report, confusion, evaluate
from bench.plan import resolve_recipe
from bench.recipe_io import to_toml
from bench.runtime import environment_tags


@dataclass(frozen=True)
class RunRequest:
    """A resolved recipe (see :mod:`bench.plan`) and how this process runs it: store, resume, output."""

    recipe: Recipe
    tracking_uri: str | None = None
    save_model: bool = True
    resume_run_id: str | None = None
    verbose: int = 0
    progress: Callable[[dict], None] | None = None  # see bench.callbacks.Progress
    checkpoint_dir: Path | None = None  # a resume's folder, as its run recorded it


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    backbone: str
    head: str
    image_size: int
    test_metrics: dict[str, float]
    train_seconds: float
    images_per_second: float
    planned_epochs: list[int]
    actual_epochs: list[int]
    notes: tuple[str, ...]
    tracking_uri: str


def _log_evaluation(run: trk.TrackedRun, fit, result, folder: Path) -> dict[str, float]:
    """Evaluate the trained model on val and test as ``recipe.eval`` says (TTA views, then a temperature
    fitted on val), log the metrics, predictions and figures; returns the test metrics without prefix."""
    from bench import plots
    from bench.evaluation import PLAIN_METRICS, calibrate_views, evaluation_views
    from bench.inference.classifier import predict_probs

    model, splits, spec, recipe = fit.model, fit.splits, fit.spec, fit.recipe
    names = splits.class_names
    truth = {"val": splits.y_val, "test": splits.y_test}
    images = {"val": splits.x_val, "test": splits.x_test}
    views = {split: evaluation_views(recipe, x, lambda v: predict_probs(model, v)) for split, x in images.items()}
    untempered = views
    views, metrics = calibrate_views(model, recipe, views, truth, len(names))
    probs = {split: v.mean(axis=0).astype(np.float32) for split, v in views.items()}
    for split in ("val", "test"):
        if len(truth[split]):
            scores = evaluate(truth[split], probs[split], names)
            metrics.update({rec.split_metric(split, k): v for k, v in scores.items()})
    if recipe.eval.tta != "none" and len(truth["test"]):
        # the same model without TTA and without the temperature fitted to the TTA average
        plain = evaluate(truth["test"], untempered["test"][0], names)
        metrics.update({rec.split_metric("test_plain", k): plain[k] for k in PLAIN_METRICS})
    run.set_tags({rec.TTA_TAG: recipe.eval.tta})
    # val_macro_f1 and val_accuracy are also per-epoch curves (steps 0 .. end_epoch - 1), and MLflow shows a
    # run's value at its highest step: logged at step 0 the evaluated (restored) model's values were hidden
    # behind the last epoch's and drew a second point at epoch 0 of the curve. After the curves they are
    # the run's values and the curve's last point.
    run.metrics(metrics, step=result.end_epoch)
    arrays = {}
    for split in ("test", "val"):
        y_true, y_prob = rec.prediction_keys(split)
        arrays.update({y_true: truth[split], y_prob: probs[split]})
    np.savez_compressed(folder / rec.PREDICTIONS_ARTIFACT, **arrays, class_names=np.array(names))
    main = "test" if len(truth["test"]) else "val"
    y, p = truth[main], probs[main]
    (folder / rec.REPORT_ARTIFACT).write_text(f"{main} split\n" + classification_report(y, p, names))
    model_name = f"{spec.backbone} + {spec.head}"
    plots.confusion_matrix_plot(
        confusion(y, p, len(names)), folder / rec.CONFUSION_ARTIFACT, names, title=f"{model_name} ({main})"
    )
    support = np.bincount(y, minlength=len(names))
    plots.recall_bars(
        metrics, folder / rec.RECALL_ARTIFACT, names, prefix=f"{main}_", support=support, title=model_name
    )
    plots.training_curves(
        result.history,
        result.phase_starts,
        folder / rec.CURVES_ARTIFACT,
        phase_names=[phase.name for phase in fit.recipe.phases],
        title=model_name,
    )
    plots.reliability_diagram(y, p, folder / rec.RELIABILITY_ARTIFACT)
    return {k.removeprefix("test_"): v for k, v in metrics.items() if k.startswith("test_")}


def _cost_metrics(model) -> dict[str, float]:
    """The cost figures bench profile reports, measured on the trained model."""
    from bench.profile import forward_flops, latency_ms

    return rec.cost_metrics(forward_flops(model), latency_ms(model))


def checkpoint_root(uri: str) -> Path:
    """Where runs keep their checkpoints until everything is logged: beside a SQLite store's database
    (so they travel with the store, whatever folder a command runs in), else ./mlruns/checkpoints.
    Each run records its absolute folder as the ``bench.checkpoint_dir`` tag; a resume reads that tag."""
    db = trk.sqlite_path(uri)
    return (db.parent if db is not None else Path(trk.DEFAULT_DIR)).resolve() / "checkpoints"


def resume_command(run_id: str, uri: str) -> str:
    """The exact command that continues ``run_id`` from any folder (the store named unless it is the
    default store of the current folder)."""
    return f"bench run --resume {run_id}" + ("" if uri == trk.default_uri() else f" --tracking-uri {uri}")


def _has_checkpoint(folder: Path) -> bool:
    return (folder / rec.TRAINED_STATE_FILE).is_file() or (folder / rec.STATE_FILE).is_file()


def save_trained(folder: Path, model, result) -> None:
    """The trained model's weights and its training record (history, epoch counts, throughput) beside the
    epoch checkpoints, before anything is logged: a run whose logging fails resumes straight to
    evaluation with the same model and figures, not only the same weights (the epoch checkpoint's last
    write already holds the weights early stopping restored). Temporary names, then renames: a full disk
    leaves the epoch checkpoint intact (the weights first: the record says the weights are there)."""
    from dataclasses import fields

    from bench.train.checkpoints import write_weights, write_whole

    folder.mkdir(parents=True, exist_ok=True)
    write_weights(model, folder / rec.TRAINED_WEIGHTS_FILE)
    text = json.dumps({f.name: getattr(result, f.name) for f in fields(result) if f.name != "model"})
    write_whole(folder / rec.TRAINED_STATE_FILE, lambda partial: partial.write_text(text))


def load_trained(folder: Path, model):
    """The TrainResult :func:`save_trained` kept, with its weights loaded into ``model``; None if none."""
    from bench.train import TrainResult

    if not (folder / rec.TRAINED_STATE_FILE).is_file():
        return None
    model.load_weights(folder / rec.TRAINED_WEIGHTS_FILE)
    return TrainResult(model, **json.loads((folder / rec.TRAINED_STATE_FILE).read_text()))


def _kept_message(run_id: str | None, exc: Exception, folder: Path | None, uri: str) -> str:
    """One line for a run the disk or the store failed: the path and cause, what survives, how to go on."""
    cause = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
    fix = getattr(exc, "fix", None) or "free space or fix permissions"
    if folder is not None and (folder / rec.TRAINED_STATE_FILE).is_file():
        kept = f"the trained model is kept in {folder}"
    elif folder is not None and (folder / rec.STATE_FILE).is_file():
        kept = f"its last epoch checkpoint is kept in {folder}"
    else:
        return f"run {run_id or '(not started)'} failed: {cause}; {fix}, then run it again"
    return f"run {run_id} failed: {cause}; {kept}: {fix}, then `{resume_command(run_id, uri)}`"


def _interrupted(run_id: str | None, folder: Path | None, uri: str) -> Interrupted:
    why = interrupts.reason()  # names the signal received: "interrupted (SIGTERM)"
    if run_id is None:
        return Interrupted(f"{why} before the run started; nothing to resume")
    if folder is None or not _has_checkpoint(folder):
        return Interrupted(f"{why}: run {run_id} is KILLED before its first epoch ended; run the command again")
    return Interrupted(f"{why}: run {run_id} is KILLED; continue it with `{resume_command(run_id, uri)}`")


def _drop_if_unresumable(folder: Path | None) -> None:
    """Remove a checkpoint folder that holds nothing to resume from (a run stopped before its first
    epoch ended): an empty folder per failed start would pile up beside the store."""
    if folder is not None and holds(folder) and not _has_checkpoint(folder):
        shutil.rmtree(folder, ignore_errors=True)


def run_one(req: RunRequest, data: FerData) -> RunSummary:
    """Fit and evaluate one resolved recipe; everything is logged to one MLflow run.

    The checkpoint folder is removed only once everything is logged; a disk or store failure becomes a
    one-line BenchError that says what is kept and the ``--resume`` command."""
    import keras

    from bench.train import Fit

    recipe = req.recipe
    backbone, head = recipe.model.backbone, recipe.model.head
    uri = trk.connect(req.tracking_uri)  # first: a bad store fails before a model is built
    experiment_id = trk.ensure_experiment(recipe.run.experiment, uri)
    fit = Fit.build(recipe, data)
    tags = {**environment_tags(fit.precision), rec.BACKBONE: backbone, rec.HEAD: head, rec.RECIPE: recipe.name}
    tags[rec.BATCHNORM_TAG] = fit.spec.batchnorm  # the kernel built: what "auto" picked on this backend
    run = trk.TrackedRun(
        experiment_id,
        run_name=f"{backbone}+{head}/{recipe.name}/s{recipe.run.seed}",
        run_id=req.resume_run_id,
        tags=tags,
    )
    folder = {"path": req.checkpoint_dir}
    try:
        with run:
            folder["path"] = folder["path"] or checkpoint_root(uri) / run.run_id
            claim(folder["path"], f"run {run.run_id}")  # a resume claimed it before the run started
            result, test_metrics = _train_and_log(run, req, fit, data, folder["path"])
    except (OSError, trk.StoreError) as exc:
        _drop_if_unresumable(folder["path"])
        raise BenchError(_kept_message(run.run_id, exc, folder["path"], uri)) from exc
    except KeyboardInterrupt as exc:
        interrupts.acknowledge()  # the run is marked KILLED: this stop is handled
        _drop_if_unresumable(folder["path"])
        raise _interrupted(run.run_id, folder["path"], uri) from exc
    except BaseException:
        _drop_if_unresumable(folder["path"])
        raise
    finally:
        if folder["path"] is not None:
            release(folder["path"])
    shutil.rmtree(folder["path"], ignore_errors=True)
    keras.backend.clear_session()
    notes = [n for n in (fit.spec.note,) if n]
    if not math.isfinite(result.images_per_second):
        notes.append("training throughput not measured: this resume trained no epochs")
    if result.optimizer_restarted:
        notes.append(
            "the checkpoint held no optimizer state for this epoch (older bench?): the resumed phase "
            "restarted its optimizer and schedule"
        )
    return RunSummary(
        run.run_id,
        backbone,
        head,
        fit.spec.image_size,
        test_metrics,
        result.train_seconds,
        result.images_per_second,
        result.planned_epochs,
        result.actual_epochs,
        tuple(notes),
        uri,
    )


def _start(run: trk.TrackedRun, req: RunRequest, fit, data: FerData, ckpt_dir: Path):
    """A fresh run logs its params and recipe; a resumed one loads its checkpoint and returns
    ``(resume_state, trained)``: where training stops, or the TrainResult it had already finished."""
    from bench.train import read_resume_state

    model = fit.model
    if req.resume_run_id:
        trained = load_trained(ckpt_dir, model)
        if trained is not None:
            return None, trained
        resume_state = read_resume_state(ckpt_dir)
        if resume_state is None:
            raise BenchError(f"run {req.resume_run_id} has no checkpoint under {ckpt_dir}; it cannot be resumed")
        model.load_weights(ckpt_dir / rec.WEIGHTS_FILE)
        return resume_state, None
    run.params(rec.run_params(fit.recipe, fit.spec, fit.splits, data))
    tags = {rec.CHECKPOINT_DIR_TAG: str(ckpt_dir), rec.LABEL_SET_TAG: data.label_set}
    if not data.source.startswith("synthetic") and Path(data.source).exists():
        tags[rec.DATA_PATH_TAG] = str(Path(data.source).resolve())  # a resume may start in another folder
    run.set_tags(tags)
    with tempfile.TemporaryDirectory() as tmp:  # logged first, so an interrupted run can resume
        (Path(tmp) / rec.RECIPE_ARTIFACT).write_text(to_toml(req.recipe))
        run.artifact(Path(tmp) / rec.RECIPE_ARTIFACT)
    run.metrics(rec.size_metrics(model))
    return None, None


def _train_and_log(run: trk.TrackedRun, req: RunRequest, fit, data: FerData, ckpt_dir: Path):
    """Train (or take the trained checkpoint), keep the trained model, then log results and artifacts."""
    resume_state, result = _start(run, req, fit, data, ckpt_dir)
    if result is None:
        result = fit.train(
            callbacks=[run.epoch_callback()],
            progress=req.progress,
            checkpoint_dir=ckpt_dir,
            verbose=req.verbose,
            resume_state=resume_state,
            logged_epochs=run.epoch_history(rec.CURVES) if resume_state is not None else None,
        )
        save_trained(ckpt_dir, fit.model, result)
    # From here on a stop signal waits for the next logging call (a safe point) instead of landing in
    # whatever TensorFlow or MLflow runs, e.g. a weakref callback that would swallow it.
    with interrupts.held():
        return _log_results(run, req, fit, result)


def _log_results(run: trk.TrackedRun, req: RunRequest, fit, result):
    """Log the training figures, the evaluation and the artifacts of a trained model."""
    run.metrics(rec.training_metrics(result, fit.recipe.model.batchnorm_stats == "recomputed"))
    run.set_tags(rec.training_tags(result))
    run.metrics(_cost_metrics(fit.model))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        test_metrics = _log_evaluation(run, fit, result, folder)
        if req.save_model:
            fit.model.save(folder / rec.MODEL_ARTIFACT)
            run.metrics({rec.KERAS_FILE_MB: (folder / rec.MODEL_ARTIFACT).stat().st_size / 2**20})
        for path in sorted(folder.iterdir()):
            run.artifact(path)
    return result, test_metrics


def resume_request(run_id: str, tracking_uri: str | None, save_model: bool = True) -> tuple[RunRequest, str]:
    """Rebuild the request of an interrupted run from its logged recipe; returns (request, data source).

    Everything a resume needs (the run, its recipe, its checkpoint) is checked here, before the run is
    touched: a resume that cannot start leaves the run's status as it was (KILLED stays KILLED). The
    run's checkpoint folder is claimed here (:mod:`bench.claims`), held until :func:`run_one` ends: a
    run still training in another process is refused, one whose process died is taken over."""
    uri = trk.connect(tracking_uri, create=False)
    logged = trk.find_run(run_id)
    if logged.info.status == "FINISHED":
        raise BenchError(f"run {run_id} already finished; nothing to resume")
    tags = logged.data.tags
    folder = Path(tags.get(rec.CHECKPOINT_DIR_TAG) or checkpoint_root(uri) / run_id)
    legacy = Path(trk.DEFAULT_DIR) / "checkpoints" / run_id  # where bench kept them before the tag existed
    if rec.CHECKPOINT_DIR_TAG not in tags and not _has_checkpoint(folder) and _has_checkpoint(legacy):
        folder = legacy
    if folder.is_dir():
        claim(folder, f"run {run_id}")
    try:
        return _resume_request(trk.find_run(run_id), uri, folder, tracking_uri, save_model)  # read after the claim
    except BaseException:
        release(folder)
        raise


def _resume_request(logged, uri: str, folder: Path, tracking_uri: str | None, save_model: bool):
    run_id, tags, params = logged.info.run_id, logged.data.tags, logged.data.params
    if logged.info.status == "FINISHED":  # its owner finished it while this process waited for the claim
        raise BenchError(f"run {run_id} already finished; nothing to resume")
    if not _has_checkpoint(folder):
        raise BenchError(
            f"run {run_id} has no checkpoint in {folder} (it stopped before its first epoch ended, or the "
            "folder was removed); it cannot be resumed, start a new run instead"
        )
    source = tags.get(rec.DATA_PATH_TAG) or params[rec.DATA_SOURCE]
    # The run's own record wins over its recipe.toml: runs logged before the recipe held backbone, head,
    # data and experiment kept the recipe file's head there even when --head chose another.
    run_fields = {
        "backbone": params[rec.BACKBONE],
        "head": params[rec.HEAD],
        "data": source,
        "experiment": trk.experiment_name(logged.info.experiment_id),
    }
    with tempfile.TemporaryDirectory() as tmp:
        recipe = resolve_recipe(str(trk.download_artifact(run_id, rec.RECIPE_ARTIFACT, Path(tmp))), **run_fields)
    req = RunRequest(recipe, tracking_uri, save_model, resume_run_id=run_id, checkpoint_dir=folder)
    return req, source


def summary_line(s: RunSummary) -> str:
    m = s.test_metrics
    parts = [f"{k}={m[k]:.4f}" for k in HEADLINE_METRICS if k in m]
    return (
        f"{s.backbone}+{s.head} @{s.image_size}px  "
        + "  ".join(parts)
        + f"  fit={s.train_seconds:.0f}s  "
        + (f"{s.images_per_second:.0f} img/s" if math.isfinite(s.images_per_second) else "img/s not measured")
        + f"  run={s.run_id}"
    )
