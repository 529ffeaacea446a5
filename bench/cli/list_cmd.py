"""``bench list``: the registered backbones and heads."""

from __future__ import annotations

import json

import click

from bench.cli.base import friendly_errors
from bench.cli.options import examples, format_option

EXAMPLES = examples(
    "bench list",
    "bench list --format json",
)


@click.command("list", epilog=EXAMPLES)
@format_option("table", "json")
@click.option("--refresh", is_flag=True, help="Rebuild the cached catalog (done by itself when a model changes).")
@friendly_errors
def list_cmd(fmt, refresh):
    """Registered backbones and heads.

    The parameter counts need every backbone built once (TensorFlow loads); the catalog is then cached
    and later listings take milliseconds.
    """
    from bench.catalog import cached_model_catalog
    from bench.reports import render_catalog

    catalog = cached_model_catalog(refresh=refresh)
    click.echo(json.dumps(catalog, indent=2) if fmt == "json" else render_catalog(catalog))
