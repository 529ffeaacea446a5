"""``bench explain``: where a trained model looks, face by face (Grad-CAM, the hybrid head's attention)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bench.cli.base import friendly_errors, load_tensorflow
from bench.cli.options import LABELS_OPTION, examples, format_option, load_saved_model, saved_model_options

EXAMPLES = examples(
    "bench explain --run RUN_ID photo.jpg --out explain/",
    "bench explain --model model.keras crops/ --no-detect --class fear",
    "bench explain --run RUN_ID --data fer2013.csv.gz --split test --per-class 16",
)


@click.command(epilog=EXAMPLES)
@click.argument("inputs", nargs=-1)
@saved_model_options(keras_only=True)
@click.option(
    "--out",
    "out_dir",
    default="explain",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the PNGs and index.html.",
)
@click.option(
    "--class", "class_name", default=None, help="Explain this class for every face (default: each face's prediction)."
)
@click.option("--no-detect", is_flag=True, help="Each image is one already-cropped face.")
@click.option("--margin", default=0.15, show_default=True, type=click.FloatRange(0, 1), help="Crop margin.")
@click.option("--min-face", default=30, show_default=True, type=click.IntRange(8), help="Smallest face, pixels.")
@click.option(
    "--detect-width", default=320, show_default=True, type=click.IntRange(0), help="Search for faces at this width."
)
@click.option("--data", "data_spec", default=None, help="A data set (as for bench run) for per-class average maps.")
@LABELS_OPTION
@click.option(
    "--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]), help="--data's split."
)
@click.option(
    "--per-class",
    default=16,
    show_default=True,
    type=click.IntRange(1),
    help="With --data: average the maps of this many most confident correct faces per class.",
)
@click.option("--kernels", is_flag=True, help="Also draw the backbone's first-layer kernels.")
@click.option("--feature-maps", is_flag=True, help="Also draw a backbone block's feature maps for the first face.")
@click.option("--block", default=None, help="The backbone layer --feature-maps shows (default: its last).")
@format_option("table", "json")
@friendly_errors
def explain(inputs, run_id, model_path, tracking_uri, out_dir, class_name, no_detect, fmt, **options):
    """Where the model looks: per face, its prediction, a Grad-CAM map (and the hybrid head's spatial
    attention) over the face, as PNGs and one self-contained index.html in --out; with --data, the mean
    maps of each class's most confident correct faces of a split, as one grid.

    Faces are found as bench predict finds them (--no-detect: each image is a face). The rows go to
    stdout (--format); notes on inputs without a face go to stderr."""
    from bench.errors import BenchError
    from bench.explain.faces import check_inputs

    data = {k: options.pop(k) for k in ("data_spec", "labels", "split", "per_class")}
    views = {k: options.pop(k) for k in ("kernels", "feature_maps", "block")}
    if not inputs and not data["data_spec"]:
        raise BenchError("give images or folders of images to explain, or --data for per-class averages")
    if views["feature_maps"] and not inputs:
        raise BenchError("--feature-maps draws them for the first face of the inputs: give an image")
    if inputs:
        check_inputs(list(inputs))  # a missing path fails before the model loads
    load_tensorflow()
    model = load_saved_model(run_id, model_path, tracking_uri, keras_only=True)
    rows, page = _explain(model, list(inputs), Path(out_dir), class_name, not no_detect, options, data, views)
    if inputs:
        click.echo(json.dumps(rows, indent=2) if fmt == "json" else _table(rows))
    click.echo(f"wrote {page}", err=True)


def _explain(model, inputs, out: Path, class_name, detect: bool, detection: dict, data: dict, views: dict):
    """The faces' rows and the page: per-face panels for ``inputs``, the per-class grid for ``data``, and
    the views inside the backbone asked for."""
    from bench.explain.faces import find_faces
    from bench.explain.gradcam import feature_grid
    from bench.explain.maps import class_index
    from bench.explain.page import write_page
    from bench.explain.report import SCORE_NOTE, explain_faces, feature_maps_figure, kernels_figure, per_class_figure
    from bench.inference.classifier import FaceClassifier, model_class_names

    grid = feature_grid(model)
    target = class_index(model_class_names(model), class_name) if class_name else None
    rows, figures = [], []
    if inputs:
        found = find_faces(FaceClassifier(model), inputs, detect=detect, **detection)
        for line in found.notes:
            click.echo(line, err=True)
        rows, figures = explain_faces(model, found, out, target)
        if views["feature_maps"]:
            source = found.records[0].source
            figures.append(feature_maps_figure(model, found.crops[0], source, out, views["block"]))
    if data["data_spec"]:
        figures.append(per_class_figure(model, out, **data))
    if views["kernels"]:
        figures.append(kernels_figure(model, out))
    notes = [f"model: {model.name}; feature grid {grid[0]}x{grid[1]}", SCORE_NOTE]
    return rows, write_page(out / "index.html", f"bench explain: {model.name}", notes, figures)


def _table(rows: list[dict]) -> str:
    from bench.reports import text_table as format_table

    body = [
        [r["source"], " ".join(map(str, r["box"])), r["predicted"], f"{r['probability']:.3f}", r["explained"], r["png"]]
        for r in rows
    ]
    return format_table(["source", "box", "predicted", "p", "map of", "png"], body)
