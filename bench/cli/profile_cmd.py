"""``bench profile``: what a backbone + head costs, measured."""

from __future__ import annotations

import json

import click

from bench.cli.base import friendly_errors, load_tensorflow
from bench.cli.options import MAX_BATCH, MAX_IMAGE_SIZE, choice_option, examples, format_option

EXAMPLES = examples(
    "bench profile --backbone baseline_cnn",
    "bench profile --backbone all --head hybrid --format json > profile.json",
    "bench profile --backbone resnet50 --image-size 224 --batch 16 --precision mixed_bfloat16",
)


@click.command("profile", epilog=EXAMPLES)
@click.option("--backbone", "backbones", multiple=True, required=True, help="Backbone name (repeatable) or 'all'.")
@click.option("--head", default="hybrid", show_default=True, help="Head name (see bench list).")
@click.option(
    "--image-size",
    default=48,
    show_default=True,
    type=click.IntRange(8, MAX_IMAGE_SIZE),
    help="Input side in pixels (upscaled).",
)
@click.option("--batch", default=32, show_default=True, type=click.IntRange(1, MAX_BATCH), help="Training batch size.")
@click.option("--recipe", default="cpu", show_default=True, help="Recipe: head options, phases, threads.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0), help="Untimed steps first.")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(1), help="Timed steps per figure.")
@choice_option("--precision", ["float32", "mixed_bfloat16", "mixed_float16"], "Keras dtype policy to measure under.")
@format_option("table", "json")
@friendly_errors
def profile_cmd(backbones, head, image_size, batch, recipe, warmup, steps, precision, fmt):
    """Parameters, FLOPs, throughput, latency, memory and file size of backbone + head."""
    from bench.plan import backbone_names
    from bench.profile import profile
    from bench.recipe_load import load_recipe
    from bench.registry import HEADS
    from bench.reports import render_profiles

    names = backbone_names(backbones)
    HEADS.check(head)
    load_recipe(recipe)  # a typo fails here, before TensorFlow loads
    load_tensorflow()
    options = dict(image_size=image_size, recipe_name=recipe, train_batch=batch, warmup=warmup, steps=steps)
    results = [profile(n, head, precision=precision, **options) for n in names]
    click.echo(json.dumps(results, indent=2) if fmt == "json" else render_profiles(results))
