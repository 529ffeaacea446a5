"""One ``bench run``: fit a resolved recipe, evaluate it and log everything as one MLflow run.

The recipe is the run's whole description (backbone, head, data, experiment, seed, method); it is logged
first, as ``recipe.toml``, and a resume rebuilds the run from it. This module only orchestrates: the names
a run writes are :mod:`bench.run_record`'s, the evaluation :mod:`bench.evaluation`'s, the checkpoint
folder :class:`bench.train.CheckpointFolder`'s, a stopped run's way on :mod:`bench.resume`'s."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import interrupts
from bench import resume as rs
from bench import run_record as rec
from bench import tracking as trk
from bench.claims import claim, release
from bench.config import Recipe
from bench.data.dataset import FerData
from bench.errors import BenchError
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
    checkpoint_root: Path | None = None  # where a new run's folder goes (default: beside the store)
    on_start: Callable[[str], None] | None = None  # told the run id once the run holds its folder (a queue)


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
    run_name = f"{backbone}+{head}/{recipe.name}/s{recipe.run.seed}"
    run = trk.TrackedRun(experiment_id, run_name=run_name, run_id=req.resume_run_id, tags=tags)
    folder = req.checkpoint_dir
    try:
        with run:
            folder = folder or (req.checkpoint_root or rs.checkpoint_root(uri)).resolve() / run.run_id
            claim(folder, f"run {run.run_id}")  # a resume claimed it before the run started
            if req.on_start is not None:
                req.on_start(run.run_id)
            result, test_metrics = _train_and_log(run, req, fit, data, folder)
    except (OSError, trk.StoreError) as exc:
        rs.drop_if_unresumable(folder)
        raise BenchError(rs.kept_message(run.run_id, exc, folder, uri)) from exc
    except KeyboardInterrupt as exc:
        interrupts.acknowledge()  # the run is marked KILLED: this stop is handled
        rs.drop_if_unresumable(folder)
        raise rs.interrupted(run.run_id, folder, uri) from exc
    except BaseException:
        rs.drop_if_unresumable(folder)
        raise
    finally:
        if folder is not None:
            release(folder)
    shutil.rmtree(folder, ignore_errors=True)
    keras.backend.clear_session()
    return _summary(run.run_id, fit, result, test_metrics, uri)


def _summary(run_id: str, fit, result, test_metrics: dict[str, float], uri: str) -> RunSummary:
    notes = [n for n in (fit.spec.note,) if n] + rs.resume_notes(result)
    if fit.devices > 1:
        batch, n = fit.recipe.data.batch_size, fit.devices
        notes.append(f"trained data-parallel on {n} devices, {batch // n} of each {batch}-face batch on each")
    model = fit.recipe.model
    return RunSummary(
        run_id,
        model.backbone,
        model.head,
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
    if req.resume_run_id:
        run.set_tags({rec.RESUMED_DEVICES_TAG: fit.devices})
        return rs.resume_point(ckpt_dir, req.resume_run_id, fit.model)
    run.params(rec.run_params(fit.recipe, fit.spec, fit.splits, data, fit.devices))
    tags = {rec.CHECKPOINT_DIR_TAG: str(ckpt_dir), rec.LABEL_SET_TAG: data.label_set}
    if not data.source.startswith("synthetic") and Path(data.source).exists():
        tags[rec.DATA_PATH_TAG] = str(Path(data.source).resolve())  # a resume may start in another folder
    run.set_tags(tags)
    with tempfile.TemporaryDirectory() as tmp:  # logged first, so an interrupted run can resume
        (Path(tmp) / rec.RECIPE_ARTIFACT).write_text(to_toml(req.recipe))
        run.artifact(Path(tmp) / rec.RECIPE_ARTIFACT)
    run.metrics(rec.size_metrics(fit.model))
    return None, None


def _train_and_log(run: trk.TrackedRun, req: RunRequest, fit, data: FerData, ckpt_dir: Path):
    """Train (or take the trained checkpoint), keep the trained model, then log results and artifacts."""
    from bench.train import CheckpointFolder

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
        CheckpointFolder(ckpt_dir).save_trained(fit.model, result)
    # From here on a stop signal waits for the next logging call (a safe point) instead of landing in
    # whatever TensorFlow or MLflow runs, e.g. a weakref callback that would swallow it.
    with interrupts.held():
        return _log_results(run, req, fit, result)


def _cost_metrics(model) -> dict[str, float]:
    """The cost figures bench profile reports, measured on the trained model."""
    from bench.profile import forward_flops, latency_ms

    return rec.cost_metrics(forward_flops(model), latency_ms(model))


def _log_evaluation(run: trk.TrackedRun, fit, result, folder: Path) -> dict[str, float]:
    """Evaluate the trained model (:func:`bench.evaluation.evaluate_trained`), log its metrics and write
    its files into ``folder``; returns the test metrics without prefix."""
    from bench.evaluation import evaluate_trained, write_evaluation_files
    from bench.inference.classifier import predict_probs

    ev = evaluate_trained(fit.model, fit.recipe, fit.splits, predict_probs)
    run.set_tags(ev.tags)
    # val_macro_f1 and val_accuracy are also per-epoch curves (steps 0 .. end_epoch - 1), and MLflow shows a
    # run's value at its highest step: logged at step 0 the evaluated (restored) model's values were hidden
    # behind the last epoch's and drew a second point at epoch 0 of the curve. After the curves they are
    # the run's values and the curve's last point.
    run.metrics(ev.metrics, step=result.end_epoch)
    title = f"{fit.spec.backbone} + {fit.spec.head}"
    write_evaluation_files(ev, folder, title, result, [phase.name for phase in fit.recipe.phases])
    return ev.test_metrics


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
    """The request that continues an interrupted run (checked and claimed by
    :func:`bench.resume.find_resumable`); returns (request, data source)."""
    found = rs.find_resumable(run_id, tracking_uri)
    req = RunRequest(found.recipe, tracking_uri, save_model, resume_run_id=run_id, checkpoint_dir=found.folder)
    return req, found.source
