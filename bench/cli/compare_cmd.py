"""``bench compare``: the leaderboard of tracked runs."""

from __future__ import annotations

from pathlib import Path

import click

from bench.cli.base import friendly_errors
from bench.cli.options import MAX_BOOTSTRAP, TRACKING_URI_OPTION, choice_option, examples, format_option

EXAMPLES = examples(
    "bench compare --experiment fer2013",
    "bench compare --experiment fer2013 --reference paper --plot leaderboard.png --html leaderboard.html",
    "bench compare --experiment fer2013 --format markdown --out leaderboard.md",
    "bench compare --experiment fer2013 --filter head=hybrid --metric val --wide",
)


@click.command(epilog=EXAMPLES)
@click.option("--experiment", "experiments", multiple=True, help="MLflow experiment(s) (repeatable).")
@click.option(
    "--data",
    "data_name",
    default=None,
    help="Name the experiment after this data set, as bench run does (default: the experiment run last).",
)
@TRACKING_URI_OPTION
@choice_option("--metric", ["test", "val"], "Rank on the test or the validation split.")
@click.option("--sort", default="macro_f1", show_default=True, help="Metric to sort by.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Keep runs whose param/tag matches.")
@click.option("--all", "include_all", is_flag=True, help="Include FAILED / KILLED / unfinished runs.")
@click.option("--reference", type=click.Choice(["paper"]), default=None, help="Add the paper's reported row.")
@click.option(
    "--bootstrap",
    default=1000,
    show_default=True,
    type=click.IntRange(10, MAX_BOOTSTRAP),
    help="Bootstrap resamples for the CIs.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap resamples.")
@format_option("table", "markdown", "csv", "json")
@click.option("--wide", is_flag=True, help="Per-class recalls in the main table.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to FILE instead of stdout.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Save plots to FILE.png.")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), default=None, help="Write a self-contained HTML report."
)
@click.option("--log", "log_run", is_flag=True, help="Log table and plots to a `leaderboard` MLflow run.")
@friendly_errors
def compare(experiments, data_name, tracking_uri, metric, sort, filters, include_all, reference, **output):
    """The leaderboard: which backbone wins, at what cost, with what confidence."""
    from bench.compare import build_leaderboard
    from bench.recipe_load import split_assignment

    names = _experiments(experiments, data_name, tracking_uri)
    board = build_leaderboard(
        names,
        uri=tracking_uri,
        split=metric,
        sort=sort,
        n_boot=output.pop("bootstrap"),
        seed=output.pop("seed"),
        include_all=include_all,
        filters=dict(split_assignment(item, "--filter", "--filter head=hybrid") for item in filters),
        reference=reference == "paper",
    )
    _write(board, names, tracking_uri, **output)


def _experiments(experiments, data_name, tracking_uri) -> list[str]:
    """The experiments asked for: named, named after a data set, or the one run last."""
    if experiments:
        return list(experiments)
    if data_name:
        from bench.data.dataset import dataset_name

        return [dataset_name(data_name)]
    from bench.tracking import latest_experiment

    names = [latest_experiment(tracking_uri)]
    click.echo(f"experiment: {names[0]} (the one run last; choose with --experiment)", err=True)
    return names


def _write(board, names, tracking_uri, *, fmt, wide, out, plot_path, html_path, log_run) -> None:
    """The table to stdout or ``--out``, the plot to ``--plot``, the HTML report to ``--html``, and with
    ``--log`` table and plot to MLflow."""
    from bench.leaderboard_render import plot, render

    text = render(board, fmt, wide)
    if out:
        Path(out).write_text(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text)
    files = []
    if plot_path:
        files.append(plot(board, Path(plot_path)))
        click.echo(f"wrote {plot_path}")
    if html_path:
        from bench.leaderboard_html import write_html

        click.echo(f"wrote {write_html(board, Path(html_path), names)}")
    if log_run:
        import tempfile

        from bench.run_record import N_CONFIGURATIONS
        from bench.tracking import log_leaderboard

        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "leaderboard.md"
            table.write_text(render(board, "markdown"))
            (Path(tmp) / "leaderboard.csv").write_text(render(board, "csv"))
            if not files:
                files.append(plot(board, Path(tmp) / "leaderboard.png"))
            run_id = log_leaderboard(
                names[0],
                [table, Path(tmp) / "leaderboard.csv", *files],
                {N_CONFIGURATIONS: len(board.table)},
                tracking_uri,
            )
        click.echo(f"logged the leaderboard as run {run_id} in experiment '{names[0]}'")
