"""``bench data preview``: one face under a recipe's augmentation, crops, erasing and mixing, as one PNG."""

from __future__ import annotations

from pathlib import Path

import click

from bench.cli.base import friendly_errors, load_tensorflow
from bench.cli.options import RECIPE_OPTION, examples, set_option


@click.command(
    "preview",
    epilog=examples(
        "bench data preview --recipe cpu --out preview.png",
        "bench data preview --recipe cpu --data fer2013.csv.gz --index 12 --set data.mix.mixup_alpha=0.2",
    ),
)
@RECIPE_OPTION
@set_option()
@click.option("--data", "data_spec", default="synthetic", show_default=True, help="Where the face comes from.")
@click.option("--index", default=0, show_default=True, type=click.IntRange(0), help="Which training face.")
@click.option("--views", default=8, show_default=True, type=click.IntRange(1, 32), help="Random draws per row.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same draws.")
@click.option("--out", default="preview.png", show_default=True, type=click.Path(dir_okay=False), help="The PNG.")
@friendly_errors
def preview(recipe, overrides, data_spec, index, views, seed, out):
    """One training face under the recipe's augmentation: whole draws, each layer alone (flips, rotation,
    crops, erasing, ...), and mixup/cutmix with a face of another class when the recipe mixes."""
    from bench.data import load_data
    from bench.data.preview import augmentation_rows, pick_faces
    from bench.errors import BenchError
    from bench.explain.render import image_grid
    from bench.plan import resolve_recipe

    resolved = resolve_recipe(recipe, overrides)
    load_tensorflow()
    images, labels = load_data(data_spec).split("train")
    if index >= len(images):
        raise BenchError(f"--index {index} is past the {len(images)} training faces of {data_spec}")
    face, partner = pick_faces(images, labels, index)
    rows = augmentation_rows(resolved.data.augment, resolved.data.mix, face, partner, views, seed)
    if not rows:
        raise BenchError(f"recipe {resolved.name} neither augments nor mixes; nothing to preview")
    grid = _grid(rows, face, index)
    title = f"recipe {resolved.name}: {views} random draws per row"
    cells, labels = [g[1] for g in grid], [g[0] for g in grid]
    path = image_grid(Path(out), cells, labels, title, cols=views + 1, value_range=(0, 255))
    click.echo(f"wrote {path}")


def _grid(rows, face, index: int) -> list[tuple[str, object]]:
    """Cells row by row: each row starts with the face itself, labelled with the row's name."""
    cells = []
    for name, drawn in rows:
        cells.append((f"{name}: face {index}", face))
        cells += drawn
    return cells
