"""``bench export``: a trained model as TensorFlow Lite or SavedModel, checked against the Keras model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bench.cli.base import friendly_errors, load_tensorflow
from bench.cli.options import choice_option, load_saved_model, saved_model_options


@click.command()
@saved_model_options
@click.option(
    "--format", "fmt", type=click.Choice(["tflite", "saved_model"]), required=True, help="File type to write."
)
@choice_option(
    "--quantize",
    ["none", "dynamic", "float16"],
    "TFLite weights: int8 (dynamic) or float16; smaller, checked against a looser tolerance.",
)
@click.option("--out", required=True, type=click.Path(), help="The .tflite file or SavedModel folder to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly_errors
def export(run_id, model_path, tracking_uri, fmt, quantize, out, as_json):
    """Export a trained model to TensorFlow Lite or SavedModel and check it agrees with the Keras model."""
    from bench.inference.export import export_model

    load_tensorflow()
    model = load_saved_model(run_id, model_path, tracking_uri)
    report = export_model(model, fmt, Path(out), quantize)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else export_text(report))
    if not report.agrees:
        click.echo(f"error: the export fails its check: {report.failure}", err=True)
        sys.exit(1)


def export_text(report) -> str:
    """The export report in words: file sizes, the agreement check, single-face latencies."""
    verdict = "agrees" if report.agrees else "DISAGREES"
    return (
        f"wrote {report.path} ({report.size_mb:.2f} MB; .keras {report.keras_size_mb:.2f} MB)\n"
        f"check on {report.samples} faces: {verdict} with the Keras model (max |diff| {report.max_abs_diff:.2e}, "
        f"tolerance {report.tolerance:g} for quantize={report.quantize}; same class for "
        f"{report.argmax_agreement:.0%}, {_confident_text(report)})\n"
        f"single-face latency: Keras {report.latency_ms_keras:.2f} ms, exported {report.latency_ms_exported:.2f} ms\n"
        f"output columns ({len(report.class_names)} classes): {', '.join(report.class_names)}"
    )


def _confident_text(report) -> str:
    if not report.confident_samples:
        return "no face confident enough to judge the class on"
    return f"{report.confident_agreement:.0%} of the {report.confident_samples} confident faces"
