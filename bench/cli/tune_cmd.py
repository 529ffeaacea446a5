"""``bench tune``: Optuna search over a recipe's [tune] space, optionally then a final run."""

from __future__ import annotations

import click

from bench.cli.base import ProgressLine, command_line, friendly_errors, load_tensorflow
from bench.cli.options import DATA_HELP, TRACKING_URI_OPTION, choice_option, devices_option, examples, run_options

EXAMPLES = examples(
    "bench tune --backbone baseline_cnn --data fer2013.csv.gz --trials 20",
    "bench tune --backbone resnet50 --data fer2013.csv.gz --trials 50 --storage postgresql://host/optuna --study r50",
    "bench tune --backbone baseline_cnn --data fer2013.csv.gz --trials 20 --final   # then train the best as a run",
    "bench tune --backbone resnet50 --recipe gpu --data fer2013.csv.gz --trials 20 --devices 2   # KERAS_BACKEND=jax",
)


@click.command(epilog=EXAMPLES)
@click.option("--backbone", required=True, help="Backbone name (see bench list).")
@run_options(data_help=DATA_HELP, data_required=True, set_help="Override a recipe field (tune.* too).")
@click.option(
    "--trials",
    required=True,
    type=click.IntRange(1),
    help="Total trials of the study (all workers), the first of which trains the recipe's own values.",
)
@click.option(
    "--timeout",
    "timeout_minutes",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Stop starting trials after MIN minutes.",
)
@click.option("--storage", default=None, help="Optuna storage URL (default: sqlite:///mlruns/optuna.db).")
@click.option(
    "--study",
    default=None,
    help="Study name, not a path (default: BACKBONE-HEAD-RECIPE). Same name = same study; its tuned recipe is "
    "experiments/tuned/NAME.toml (NAME-2.toml, ... when taken).",
)
@choice_option("--sampler", ["tpe", "random"], "Optuna sampler.")
@choice_option("--pruner", ["median", "hyperband", "none"], "Stops trials that trail the others.")
@click.option("--seed", default=0, show_default=True, type=int, help="Sampler seed.")
@devices_option("Every trial (and --final) trains so; the tuned recipe leaves run.devices out (a speed setting).")
@TRACKING_URI_OPTION
@click.option(
    "--final",
    is_flag=True,
    help="Then train the tuned recipe (the recipe itself when no trial beat it) as a normal run; report test metrics.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress line and no line per trial, only the result.")
@friendly_errors
def tune(backbone, recipe, overrides, study, tracking_uri, final, quiet, **settings):
    """Tune class weights, learning rates and regularization with Optuna (validation macro-F1).

    The first trial trains the recipe's own values; the tuned recipe is written only if a trial beats it."""
    from bench.data import load_for_recipe
    from bench.plan import check_runnable, resolve_recipe
    from bench.store import check_store
    from bench.tune import TuneRequest, check_storage, run_study
    from bench.tune_space import check_study_name, search_space

    description = {k: settings.pop(k) for k in ("head", "data", "labels", "experiment", "devices")}
    base = resolve_recipe(recipe, overrides, backbone=backbone, **description)
    study = study or f"{backbone}-{base.model.head}-{base.name}"
    check_study_name(study)  # bad names, [tune] tables and storages fail before TensorFlow loads
    check_runnable(base)
    search_space(base, base.model.head)
    if settings["storage"]:
        check_storage(settings["storage"])
    check_store(tracking_uri)
    load_tensorflow()
    data = load_for_recipe(base)
    line = None if quiet else ProgressLine(f"tuning {backbone}+{base.model.head}")
    req = TuneRequest(base, study=study, tracking_uri=tracking_uri, **settings, progress=line)
    req = _with_reports(req, line, command_line(click.get_current_context()))
    try:
        summary = run_study(req, data)
    finally:
        if line is not None:
            line.close()
    _print_summary(summary, base)
    if final:
        from bench.reports import summary_line
        from bench.runner import RunRequest, run_one
        from bench.tune_space import with_speed_settings

        # the tuned recipe was written without this machine's speed settings; this machine trains it
        final_recipe = with_speed_settings(summary["tuned"], base.run) if summary["tuned"] else base
        click.echo(summary_line(run_one(RunRequest(final_recipe, tracking_uri), data)))


def _with_reports(req, line, command: str):
    """The request with a per-trial line on stderr (unless ``--quiet``) and the command that continues it."""
    from dataclasses import replace

    def on_trial(status):
        from bench.reports import format_trial

        line.close()
        click.echo(format_trial(status) + (" (the recipe's own values)" if status.get("baseline") else ""), err=True)

    return replace(req, on_trial=None if line is None else on_trial, command=command)


def _print_summary(summary: dict, base) -> None:
    """The study's counts, its best trial beside the baseline, and the ``bench run`` line for the tuned
    recipe, or one line saying that no trial beat the recipe's own values (and nothing was written)."""
    click.echo(
        f"study {summary['study']}: {summary['n_complete']} complete, {summary['n_pruned']} pruned, "
        f"{summary['n_failed']} failed"
    )
    baseline = summary["baseline_value"]
    own = f"{baseline:.4f} (trial {summary['baseline_trial']})" if baseline is not None else "not finished"
    own = "failed" if summary["baseline_failed"] else own
    if not summary["beaten"]:
        other = summary["best_other_value"]
        best = f"; the best other trial {other:.4f}" if other is not None else ""
        click.echo(
            f"no trial beat the recipe's own values (val macro-F1 {own}{best}): no tuned recipe written; "
            f"the recipe {base.name} stays as it is"
        )
        return
    click.echo(f"best trial {summary['best_trial']}: val macro-F1 {summary['best_value']:.4f}; the recipe's own {own}")
    for name, value in summary["best_params"].items():
        click.echo(f"  {name} = {value:.6g}" if isinstance(value, float) else f"  {name} = {value}")
    click.echo(
        f"tuned recipe written to {summary['recipe_path']} (bench run --recipe {summary['recipe_path']} "
        f"--backbone {base.model.backbone} --head {base.model.head})"
    )
