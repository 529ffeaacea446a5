"""``bench list``: the registered backbones and heads."""

from __future__ import annotations

import json

import click

from bench.cli.base import friendly_errors
from bench.cli.options import format_option


@click.command("list")
@format_option("table", "json")
@friendly_errors
def list_cmd(fmt):
    """Registered backbones and heads."""
    from bench.reports import model_catalog, render_catalog

    catalog = model_catalog()
    click.echo(json.dumps(catalog, indent=2) if fmt == "json" else render_catalog(catalog))
