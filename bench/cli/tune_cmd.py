"""``bench tune``: Optuna search over a recipe's [tune] space, optionally then a final run."""

from __future__ import annotations

import click

from bench.cli.base import ProgressLine, command_line, friendly_errors, load_tensorflow
from bench.cli.options import DATA_HELP, HEAD_OPTION, RECIPE_OPTION, TRACKING_URI_OPTION


@click.command()
@click.option("--backbone", required=True, help="Backbone name (see bench list).")
@HEAD_OPTION
@RECIPE_OPTION
@click.option(
    "--data",
    "data_spec",
    required=True,
    help=DATA_HELP,
)
@click.option("--trials", required=True, type=click.IntRange(1), help="Total trials of the study (all workers).")
@click.option(
    "--timeout",
    "timeout_minutes",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Stop starting trials after MIN minutes.",
)
@click.option("--storage", default=None, help="Optuna storage URL (default: sqlite:///mlruns/optuna.db).")
@click.option("--study", default=None, help="Study name (default: BACKBONE-HEAD-RECIPE). Same name = same study.")
@click.option(
    "--sampler", type=click.Choice(["tpe", "random"]), default="tpe", show_default=True, help="Optuna sampler."
)
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    default="median",
    show_default=True,
    help="Stops trials that trail the others.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Sampler seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field (tune.* too).")
@click.option("--experiment", default=None, help="MLflow experiment (default: the data set's name).")
@TRACKING_URI_OPTION
@click.option("--final", is_flag=True, help="Then train the tuned recipe as a normal run and report test metrics.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line and no line per trial, only the result.")
@friendly_errors
def tune(
    backbone,
    head,
    recipe,
    data_spec,
    trials,
    timeout_minutes,
    storage,
    study,
    sampler,
    pruner,
    seed,
    overrides,
    experiment,
    tracking_uri,
    final,
    quiet,
):
    """Tune class weights, learning rates and regularization with Optuna (validation macro-F1)."""
    from bench.config import load_recipe
    from bench.data import load_data
    from bench.registry import BACKBONES, HEADS
    from bench.tracking import check_store
    from bench.tune import TuneRequest, run_study, search_space

    base = load_recipe(recipe, list(overrides))
    head = head or base.model.head
    BACKBONES.check(backbone)
    HEADS.check(head)
    search_space(base, head)  # a bad [tune] table fails before TensorFlow loads
    check_store(tracking_uri)
    load_tensorflow()
    data = load_data(data_spec, seed=base.run.seed)
    line = None if quiet else ProgressLine(f"tuning {backbone}+{head}")

    def on_trial(status):
        from bench.reports import format_trial

        line.close()
        click.echo(format_trial(status), err=True)

    req = TuneRequest(
        backbone,
        head,
        base,
        experiment or data.name,
        trials,
        study or f"{backbone}-{head}-{base.name}",
        storage,
        timeout_minutes,
        sampler,
        pruner,
        seed,
        tracking_uri,
        on_trial=None if quiet else on_trial,
        progress=line,
        command=command_line(click.get_current_context()),
    )
    try:
        summary = run_study(req, data)
    finally:
        if line is not None:
            line.close()
    click.echo(
        f"study {summary['study']}: {summary['n_complete']} complete, {summary['n_pruned']} pruned, "
        f"{summary['n_failed']} failed"
    )
    click.echo(f"best trial {summary['best_trial']}: val macro-F1 {summary['best_value']:.4f}")
    for name, value in summary["best_params"].items():
        click.echo(f"  {name} = {value:.6g}" if isinstance(value, float) else f"  {name} = {value}")
    click.echo(
        f"tuned recipe: {summary['recipe_path']} (bench run --recipe {summary['recipe_path']} "
        f"--backbone {backbone} --head {head})"
    )
    if final:
        from bench.runner import RunRequest, run_one, summary_line

        result = run_one(RunRequest(backbone, head, summary["tuned"], req.experiment, tracking_uri), data)
        click.echo(summary_line(result))
