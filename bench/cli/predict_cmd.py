"""``bench predict``: emotions of the faces in images, folders and videos."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bench.cli.base import friendly_errors, load_tensorflow
from bench.cli.options import (
    examples,
    face_options,
    format_option,
    is_onnx_path,
    load_saved_model,
    saved_model_options,
)

EXAMPLES = examples(
    "bench predict --run RUN_ID photo.jpg",
    "bench predict --run RUN_ID photos/ clip.mp4 --out annotated/ --format json > predictions.json",
    "bench predict --model model.keras crops/ --no-detect --format csv",
    "bench predict --model fer.onnx photo.jpg",
    "bench predict --run RUN_ID photo.jpg --tta flip",
)


@click.command(epilog=EXAMPLES)
@click.argument("inputs", nargs=-1, required=True)
@saved_model_options
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Folder for annotated files.")
@format_option("table", "json", "csv")
@click.option("--no-detect", is_flag=True, help="Each image (or frame) is one already-cropped face.")
@face_options
@click.option("--stride", default=1, show_default=True, type=click.IntRange(1), help="Video: every n-th frame.")
@friendly_errors
def predict(inputs, run_id, model_path, tracking_uri, out_dir, fmt, no_detect, tta, **options):
    """Emotions of the faces in images, folders and videos.

    Predictions go to stdout (--format); per-input notes, errors and video timing go to stderr. The
    exit status is 1 when some input could not be read (the others are still processed)."""
    from bench.inference.classifier import FaceClassifier
    from bench.inference.predict import PredictOptions, predict_files
    from bench.reports import render_predictions

    if not is_onnx_path(model_path):  # ONNX Runtime runs it: importing TensorFlow would only cost seconds
        load_tensorflow()
    model = load_saved_model(run_id, model_path, tracking_uri)
    classifier = FaceClassifier(model, *tta_settings(tta, run_id, tracking_uri))
    out = Path(out_dir) if out_dir else None
    report = predict_files(classifier, list(inputs), PredictOptions(detect=not no_detect, out_dir=out, **options))
    click.echo(render_predictions(report, fmt))
    for line in input_notes(report):
        click.echo(line, err=True)
    if any(r.error for r in report.inputs):
        sys.exit(1)


def tta_settings(tta: str | None, run_id: str | None, tracking_uri: str | None) -> tuple[str, int]:
    """``(mode, crop padding)`` for the classifier: ``--tta`` or the run's own setting; a model file records
    no crop padding, so ``--tta crops`` needs ``--run``."""
    from bench.errors import BenchError
    from bench.inference.classifier import run_tta_settings

    if run_id:
        logged, padding = run_tta_settings(run_id, tracking_uri)
        return tta or logged, padding
    if tta == "crops":
        raise BenchError("--tta crops needs --run RUN_ID (a model file does not record the crops' padding)")
    return tta or "none", 0


def input_notes(report) -> list[str]:
    """Per-input errors, faceless inputs and annotated files, then the video timing: the stderr lines."""
    lines = []
    for r in report.inputs:
        if r.error:
            lines.append(f"error: {r.source}: {r.error}")
        elif r.faces == 0:
            lines.append(
                f"note: {r.source}: no face found"
                + (" (try --no-detect for cropped faces)" if r.kind == "image" else "")
            )
        if r.annotated:
            lines.append(f"wrote {r.annotated}")
    if report.video_frames:
        stages = ", ".join(f"{k} {v['mean']:.1f}" for k, v in report.stage_summary().items())
        lines.append(
            f"video: {report.video_frames} frames at {report.video_fps:.1f} frames/s; mean ms per frame: {stages}"
        )
    return lines
