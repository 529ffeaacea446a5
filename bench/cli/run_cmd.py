"""``bench run``: train, evaluate and log backbone(s) + head with one recipe."""

from __future__ import annotations

import click

from bench.cli.base import ProgressLine, friendly_errors, load_tensorflow
from bench.cli.options import DATA_HELP, TRACKING_URI_OPTION, devices_option, examples, run_options

EXAMPLES = examples(
    "bench run --backbone baseline_cnn --data fer2013.csv.gz",
    "bench run --backbone all --recipe cpu --data fer2013.csv.gz --seed 42 --seed 43",
    "bench run --backbone mini_xception --head conv_gap --recipe arriaga --data fer2013.csv.gz",
    "bench run --backbone resnet50 --data fer2013.csv.gz --set data.batch_size=64 --set phases.0.epochs=5",
    "bench run --backbone resnet50 --data fer2013.csv.gz --labels ferplus --set data.targets=crossentropy",
    "bench run --backbone baseline_cnn --recipe smoke --data synthetic   # try it in a minute",
    "bench run --backbone resnet50 --recipe gpu --data fer2013.csv.gz --devices 2   # KERAS_BACKEND=jax",
    "bench run --resume RUN_ID",
    "bench run --backbone all --seed 42 --seed 43 --data fer2013.csv.gz --queue sqlite:///mlruns/queue.db  # per GPU",
)


@click.command(epilog=EXAMPLES)
@click.option("--backbone", "backbones", multiple=True, help="Backbone name (repeatable), or 'all'.")
@run_options(data_help=DATA_HELP + " Required, except with --resume (the run knows its data).")
@click.option("--weights", default=None, help="imagenet, none, or a weights file (overrides the recipe).")
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed (repeatable: one run per seed).")
@TRACKING_URI_OPTION
@click.option("--resume", "resume_run_id", default=None, metavar="RUN_ID", help="Continue an interrupted run.")
@click.option(
    "--queue",
    "queue_url",
    default=None,
    metavar="URL",
    help="Share the backbone x seed matrix with every worker started with the same command: an Optuna "
    "storage URL (sqlite:///PATH.db on one machine, postgresql://... across machines); see README.",
)
@click.option(
    "--queue-grace",
    default=120,
    show_default=True,
    type=click.IntRange(2, 86_400),
    metavar="SECONDS",
    help="With --queue: a cell whose worker sent no heartbeat this long is taken over and resumed.",
)
@click.option(
    "--checkpoint-root",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for new runs' checkpoints (default: beside a SQLite store, else ./mlruns/checkpoints); "
    "with --queue on several machines, a folder every worker sees at the same path.",
)
@click.option("--deterministic", is_flag=True, help="Deterministic ops (slower); same seed, same metrics.")
@devices_option("With --resume: the resumed run's count.")
@click.option("--no-save-model", is_flag=True, help="Do not log the trained model as model.keras.")
@click.option("--skip-bad", is_flag=True, help="Drop malformed data rows instead of failing.")
@click.option("-v", "--verbose", count=True, help="Show Keras progress (-v per epoch, -vv per step).")
@click.option("-q", "--quiet", is_flag=True, help="No progress line, only each run's result.")
@friendly_errors
def run(backbones, seeds, tracking_uri, resume_run_id, no_save_model, skip_bad, verbose, quiet, **description):
    """Train, evaluate and log backbone(s) + head with one recipe."""
    from dataclasses import replace
    from pathlib import Path

    from bench.data import load_for_recipe
    from bench.runner import RunRequest, resume_request

    queue_url, grace, root = (description.pop(k) for k in ("queue_url", "queue_grace", "checkpoint_root"))
    if queue_url and resume_run_id:
        raise click.UsageError("--resume continues one run; --queue resumes its cells' runs itself: give one")
    if resume_run_id:
        req, source = resume_request(resume_run_id, tracking_uri, save_model=not no_save_model)
        if description["devices"] is not None:  # a speed setting: the run resumes on another device count
            req = replace(req, recipe=replace(req.recipe, run=replace(req.recipe.run, devices=description["devices"])))
        base, recipes = req.recipe, [req.recipe]
    else:
        base, recipes = _plan(backbones, seeds, tracking_uri, description)
        req, source = (RunRequest(base, tracking_uri, not no_save_model), base.data.source)
    keras_verbose = {0: 0, 1: 2, 2: 1}.get(verbose, 1)
    req = replace(req, verbose=keras_verbose, checkpoint_root=Path(root) if root else None)
    requests = [replace(req, recipe=r) for r in recipes]
    if queue_url:
        from bench.cli.queue_output import open_matrix_queue, work_queue

        queue = open_matrix_queue(requests, queue_url, grace)  # a bad URL fails before TensorFlow loads
        load_tensorflow(verbose)
        work_queue(requests, load_for_recipe(base, source, skip_bad=skip_bad), queue, not (quiet or verbose))
        return
    load_tensorflow(verbose)
    data = load_for_recipe(base, source, skip_bad=skip_bad)
    _run_all(requests, data, not (quiet or verbose))


def _plan(backbones, seeds, tracking_uri, description: dict):
    """The resolved recipe and one copy per backbone x seed, checked (recipe and names first, then the
    store) before TensorFlow loads, so a typo costs no start-up time."""
    from bench.plan import expand, resolve_recipe
    from bench.store import check_store

    base = resolve_recipe(description.pop("recipe"), description.pop("overrides"), **description)
    recipes = expand(base, backbones, seeds)
    check_store(tracking_uri)
    return base, recipes


def _run_all(requests, data, show_progress: bool) -> None:
    """Run each request in turn, with a progress line and a summary line each. A stop signal that came
    as a run finished (its last logging done) ends the command before the next one starts."""
    from dataclasses import replace

    from bench import interrupts
    from bench.reports import summary_line
    from bench.runner import run_one

    click.echo(f"data: {data.source} ({data.split_sizes()}), {data.protocol}")
    summaries = []
    for i, req in enumerate(requests):
        interrupts.check()
        recipe = req.recipe
        backbone, head, seed = recipe.model.backbone, recipe.model.head, recipe.run.seed
        click.echo(f"== {backbone} + {head}, recipe {recipe.name}, seed {seed}")
        line = ProgressLine(f"[{i + 1}/{len(requests)}] {backbone}+{head} s{seed}") if show_progress else None
        try:
            summary = run_one(replace(req, progress=line), data)
        finally:
            if line is not None:
                line.close()
        for note in summary.notes:
            click.echo(f"note: {note}")
        click.echo(summary_line(summary))
        summaries.append(summary)
    interrupts.check()
    if summaries:
        from bench.tracking import ui_command

        click.echo(f"open the runs with: {ui_command(summaries[0].tracking_uri)}")
