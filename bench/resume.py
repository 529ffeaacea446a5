"""How a stopped run goes on: where its checkpoint folder is, whether it can be resumed, what the one-line
message of a failed or interrupted run says survives, and the run a ``bench run --resume`` rebuilds.

Why apart from :mod:`bench.runner`: the runner orchestrates one run; this is what a run leaves behind
when it does not finish and how the next process finds it. The folder's files are
:class:`bench.train.checkpoints.CheckpointFolder`'s; the names this reads from the tracking store are
:mod:`bench.run_record`'s."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import interrupts
from bench import run_record as rec
from bench import tracking as trk
from bench.claims import claim, holds, release
from bench.config import Recipe
from bench.errors import BenchError, Interrupted, os_error_text
from bench.plan import resolve_recipe
from bench.store import DEFAULT_DIR, default_uri, sqlite_path


def checkpoint_root(uri: str) -> Path:
    """Where runs keep their checkpoints until everything is logged: beside a SQLite store's database
    (so they travel with the store, whatever folder a command runs in), else ./mlruns/checkpoints.
    Each run records its absolute folder as the ``bench.checkpoint_dir`` tag; a resume reads that tag."""
    db = sqlite_path(uri)
    return (db.parent if db is not None else Path(DEFAULT_DIR)).resolve() / "checkpoints"


def resume_command(run_id: str, uri: str) -> str:
    """The exact command that continues ``run_id`` from any folder (the store named unless it is the
    default store of the current folder)."""
    return f"bench run --resume {run_id}" + ("" if uri == default_uri() else f" --tracking-uri {uri}")


def _folder(path: Path | None):
    """The run's :class:`CheckpointFolder`, imported here: bench.train loads Keras, which a resume that
    cannot start must not wait for (this module is imported before it is checked)."""
    from bench.train.checkpoints import CheckpointFolder

    return CheckpointFolder(path) if path is not None else None


def kept_message(run_id: str | None, exc: Exception, folder: Path | None, uri: str) -> str:
    """One line for a run the disk or the store failed: the path and cause, what survives, how to go on."""
    cause = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
    fix = getattr(exc, "fix", None) or "free space or fix permissions"
    checkpoints = _folder(folder)
    if checkpoints is not None and checkpoints.has_trained():
        kept = f"the trained model is kept in {folder}"
    elif checkpoints is not None and checkpoints.has_epoch():
        kept = f"its last epoch checkpoint is kept in {folder}"
    else:
        return f"run {run_id or '(not started)'} failed: {cause}; {fix}, then run it again"
    return f"run {run_id} failed: {cause}; {kept}: {fix}, then `{resume_command(run_id, uri)}`"


def interrupted(run_id: str | None, folder: Path | None, uri: str) -> Interrupted:
    """The stop of a run by Ctrl-C or SIGTERM, saying whether and how it continues."""
    why = interrupts.reason()  # names the signal received: "interrupted (SIGTERM)"
    if run_id is None:
        return Interrupted(f"{why} before the run started; nothing to resume")
    if folder is None or not rec.holds_checkpoint(folder):
        return Interrupted(f"{why}: run {run_id} is KILLED before its first epoch ended; run the command again")
    return Interrupted(f"{why}: run {run_id} is KILLED; continue it with `{resume_command(run_id, uri)}`")


def drop_if_unresumable(folder: Path | None) -> None:
    """Remove a checkpoint folder that holds nothing to resume from (a run stopped before its first
    epoch ended): an empty folder per failed start would pile up beside the store."""
    if folder is not None and holds(folder) and not rec.holds_checkpoint(folder):
        shutil.rmtree(folder, ignore_errors=True)


def resume_notes(result) -> list[str]:
    """What a resumed run's summary must say of its training (a fresh run's never trips these)."""
    notes = []
    if not math.isfinite(result.images_per_second):
        notes.append("training throughput not measured: this resume trained no epochs")
    if result.optimizer_restarted:
        notes.append(
            "the checkpoint held no optimizer state for this epoch (older bench?): the resumed phase "
            "restarted its optimizer and schedule"
        )
    return notes


def resume_point(folder: Path, run_id: str, model):
    """``(resume_state, trained)`` of a resumed run, ``model`` loaded with the weights to go on from:
    the TrainResult it had already finished (logging had failed), or where its training stopped."""
    checkpoints = _folder(folder)
    trained = checkpoints.load_trained(model)
    if trained is not None:
        return None, trained
    state = checkpoints.state()
    if state is None:
        raise BenchError(f"run {run_id} has no checkpoint under {folder}; it cannot be resumed")
    checkpoints.load_weights(model)
    return state, None


@dataclass(frozen=True)
class Resumable:
    """A stopped run checked for a resume: its resolved recipe, claimed checkpoint folder and data."""

    run_id: str
    recipe: Recipe
    folder: Path
    source: str


def find_resumable(run_id: str, tracking_uri: str | None) -> Resumable:
    """Rebuild an interrupted run from its logged recipe.

    Everything a resume needs (the run, its recipe, its checkpoint) is checked here, before the run is
    touched: a resume that cannot start leaves the run's status as it was (KILLED stays KILLED). The
    run's checkpoint folder is claimed here (:mod:`bench.claims`), held until the run ends: a run still
    training in another process is refused, one whose process died is taken over."""
    uri = trk.connect(tracking_uri, create=False)
    logged = trk.find_run(run_id)
    if logged.info.status == "FINISHED":
        raise BenchError(f"run {run_id} already finished; nothing to resume")
    tags = logged.data.tags
    folder = Path(tags.get(rec.CHECKPOINT_DIR_TAG) or checkpoint_root(uri) / run_id)
    legacy = Path(DEFAULT_DIR) / "checkpoints" / run_id  # where bench kept them before the tag existed
    if rec.CHECKPOINT_DIR_TAG not in tags and not rec.holds_checkpoint(folder) and rec.holds_checkpoint(legacy):
        folder = legacy
    if folder.is_dir():
        claim(folder, f"run {run_id}")
    try:
        return _checked(trk.find_run(run_id), folder)  # read after the claim
    except BaseException:
        release(folder)
        raise


def _checked(logged, folder: Path) -> Resumable:
    run_id, tags, params = logged.info.run_id, logged.data.tags, logged.data.params
    if logged.info.status == "FINISHED":  # its owner finished it while this process waited for the claim
        raise BenchError(f"run {run_id} already finished; nothing to resume")
    if not rec.holds_checkpoint(folder):
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
    return Resumable(run_id, recipe, folder, source)
