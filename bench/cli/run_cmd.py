"""``bench run``: train, evaluate and log backbone(s) + head with one recipe."""

from __future__ import annotations

import click

from bench.cli.base import ProgressLine, friendly_errors, load_tensorflow
from bench.cli.options import DATA_HELP, HEAD_OPTION, RECIPE_OPTION, TRACKING_URI_OPTION
from bench.errors import BenchError


@click.command()
@click.option("--backbone", "backbones", multiple=True, help="Backbone name (repeatable), or 'all'.")
@HEAD_OPTION
@RECIPE_OPTION
@click.option(
    "--data",
    "data_spec",
    default=None,
    help=DATA_HELP + " Required, except with --resume (the run knows its data).",
)
@click.option("--weights", default=None, help="imagenet, none, or a weights file (overrides the recipe).")
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed (repeatable: one run per seed).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field.")
@click.option("--experiment", default=None, help="MLflow experiment (default: the data set's name).")
@TRACKING_URI_OPTION
@click.option("--resume", "resume_run_id", default=None, metavar="RUN_ID", help="Continue an interrupted run.")
@click.option("--deterministic", is_flag=True, help="Deterministic ops (slower); same seed, same metrics.")
@click.option("--no-save-model", is_flag=True, help="Do not log the trained model as model.keras.")
@click.option("--skip-bad", is_flag=True, help="Drop malformed data rows instead of failing.")
@click.option("-v", "--verbose", count=True, help="Show Keras progress (-v per epoch, -vv per step).")
@click.option("-q", "--quiet", is_flag=True, help="No progress line, only each run's result.")
@friendly_errors
def run(
    backbones,
    head,
    recipe,
    data_spec,
    weights,
    seeds,
    overrides,
    experiment,
    tracking_uri,
    resume_run_id,
    deterministic,
    no_save_model,
    skip_bad,
    verbose,
    quiet,
):
    """Train, evaluate and log backbone(s) + head with one recipe."""
    from dataclasses import replace

    from bench.data import load_data
    from bench.runner import resume_request, run_one, summary_line

    keras_verbose = {0: 0, 1: 2, 2: 1}.get(verbose, 1)
    if resume_run_id:
        req, source = resume_request(resume_run_id, tracking_uri, save_model=not no_save_model)
        req = replace(req, verbose=keras_verbose)
        load_tensorflow(verbose)
        requests = [req]
        data = load_data(source, skip_bad=skip_bad, seed=req.recipe.run.seed)
    else:
        requests, data = _plan_runs(
            backbones,
            head,
            recipe,
            data_spec,
            weights,
            seeds,
            overrides,
            experiment,
            tracking_uri,
            deterministic,
            no_save_model,
            skip_bad,
            keras_verbose,
        )
    click.echo(f"data: {data.source} ({data.split_sizes()}), {data.protocol}")
    summaries = []
    for i, req in enumerate(requests):
        click.echo(f"== {req.backbone} + {req.head}, recipe {req.recipe.name}, seed {req.recipe.run.seed}")
        line = (
            None
            if quiet or verbose
            else ProgressLine(f"[{i + 1}/{len(requests)}] {req.backbone}+{req.head} s{req.recipe.run.seed}")
        )
        try:
            summary = run_one(replace(req, progress=line), data)
        finally:
            if line is not None:
                line.close()
        for note in summary.notes:
            click.echo(f"note: {note}")
        click.echo(summary_line(summary))
        summaries.append(summary)
    if summaries:
        from bench.tracking import ui_command

        click.echo(f"open the runs with: {ui_command(summaries[0].tracking_uri)}")


def _plan_runs(
    backbones,
    head,
    recipe_name,
    data_spec,
    weights,
    seeds,
    overrides,
    experiment,
    tracking_uri,
    deterministic,
    no_save_model,
    skip_bad,
    verbose,
):
    from dataclasses import replace

    from bench.config import load_recipe
    from bench.data import load_data
    from bench.registry import BACKBONES, HEADS
    from bench.runner import RunRequest
    from bench.tracking import check_store

    if not backbones:
        raise BenchError("name at least one --backbone (or --backbone all); see `bench list`")
    if data_spec is None:
        raise BenchError("--data is required: a FER2013 CSV, an image-folder root, or synthetic to try bench")
    extra = list(overrides)
    if weights:
        extra.append(f'model.weights="{weights}"')
    if deterministic:
        extra.append("run.deterministic=true")
    base = load_recipe(recipe_name, extra)  # first: a recipe or --set typo is reported before TensorFlow loads
    head = head or base.model.head
    names = BACKBONES.known_names() if "all" in backbones else list(dict.fromkeys(backbones))
    for name in names:
        BACKBONES.check(name)
    HEADS.check(head)
    check_store(tracking_uri)
    load_tensorflow(verbose)
    recipes = [replace(base, run=replace(base.run, seed=s)) for s in seeds] if seeds else [base]
    data = load_data(data_spec, skip_bad=skip_bad, seed=base.run.seed)
    return [
        RunRequest(b, head, r, experiment or data.name, tracking_uri, not no_save_model, verbose=verbose)
        for b in names
        for r in recipes
    ], data
