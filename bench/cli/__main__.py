"""``python -m bench.cli``: the same command line as the ``bench`` entry point."""

from bench.cli import cli

cli()
