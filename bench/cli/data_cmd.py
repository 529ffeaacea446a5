"""``bench data check`` and ``bench data synth``."""

from __future__ import annotations

import json

import click

from bench.cli.base import friendly_errors
from bench.cli.options import MAX_SYNTHETIC_FACES, examples, format_option


@click.group()
def data():
    """Inspect data sets and make synthetic ones."""


@data.command(
    "check",
    epilog=examples(
        "bench data check --data fer2013.csv.gz",
        "bench data check --data fer2013.csv.gz --votes fer2013plus_votes.csv --format json",
        "bench data check --data fer2013-images/   # train/<class>/, test/<class>/",
    ),
)
@click.option(
    "--data",
    "data_spec",
    default="synthetic",
    show_default=True,
    help="FER2013 CSV (.csv/.csv.gz), image-folder root, or synthetic[:N[:SEED]].",
)
@click.option("--skip-bad", is_flag=True, help="Drop malformed rows / unreadable images instead of failing.")
@click.option(
    "--votes",
    default=None,
    type=click.Path(dir_okay=False),
    help="FER+ votes aligned to the CSV's rows (default: fer2013plus_votes.csv beside it or in ../ferplus/).",
)
@format_option("table", "json")
@friendly_errors
def data_check(data_spec, skip_bad, votes, fmt):
    """Class counts per split, imbalance, class weights, duplicates, blank images and, given FER+ votes,
    FER+ majority-vote counts, dropped rows and agreement with the FER2013 labels."""
    from bench.data import load_data
    from bench.data.checks import data_report
    from bench.data.ferplus import find_votes
    from bench.reports import render_data_report

    found = votes or find_votes(data_spec)
    report = data_report(load_data(data_spec, skip_bad=skip_bad), found, votes_required=votes is not None)
    click.echo(json.dumps(report, indent=2) if fmt == "json" else render_data_report(report))


@data.command("synth", epilog=examples("bench data synth --out faces.csv --n 4000 --seed 0"))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output CSV (.csv or .csv.gz).")
@click.option(
    "--n", default=4000, show_default=True, type=click.IntRange(1, MAX_SYNTHETIC_FACES), help="Number of faces."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same faces.")
@friendly_errors
def data_synth(out, n, seed):
    """Write N synthetic faces (not FER2013) in the Kaggle CSV schema."""
    from bench.data.synthetic import write_csv

    path = write_csv(out, n, seed)
    click.echo(f"wrote {n} synthetic faces to {path}")
