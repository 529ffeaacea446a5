"""The ``bench`` command line: a thin click group, one module per command. Heavy imports (TensorFlow,
MLflow, Optuna) happen inside command bodies so that ``bench --help`` answers at once."""

from __future__ import annotations

import click

from bench.cli.base import BenchGroup, ProgressLine, _terminate_like_ctrl_c, friendly_errors
from bench.cli.compare_cmd import compare
from bench.cli.data_cmd import data
from bench.cli.explain_cmd import explain
from bench.cli.export_cmd import export
from bench.cli.list_cmd import list_cmd
from bench.cli.live_cmd import live
from bench.cli.options import HEAD_OPTION, RECIPE_OPTION, TRACKING_URI_OPTION, examples
from bench.cli.predict_cmd import predict
from bench.cli.preview_cmd import preview
from bench.cli.profile_cmd import profile_cmd
from bench.cli.run_cmd import run
from bench.cli.tune_cmd import tune


@click.group(
    cls=BenchGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "bench data check --data fer2013.csv.gz",
        "bench run --backbone baseline_cnn --backbone resnet50 --data fer2013.csv.gz",
        "bench compare --experiment fer2013 --html leaderboard.html",
        "bench COMMAND --help   # options and examples of one command",
    ),
)
@click.version_option(package_name="bench")
def cli():
    """bench: train and compare FER backbones on FER2013 with one recipe."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not "Creating initial MLflow database tables..."


for command in (data, list_cmd, run, compare, profile_cmd, tune, predict, live, export, explain):
    cli.add_command(command)
data.add_command(preview)


def main() -> None:  # pragma: no cover - console entry point
    cli()


__all__ = [
    "HEAD_OPTION",
    "RECIPE_OPTION",
    "TRACKING_URI_OPTION",
    "ProgressLine",
    "_terminate_like_ctrl_c",
    "cli",
    "friendly_errors",
    "main",
]
