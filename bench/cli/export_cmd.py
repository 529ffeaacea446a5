"""``bench export``: a trained model as TensorFlow Lite, SavedModel or ONNX, checked against the Keras model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bench.cli.base import friendly_errors, load_tensorflow
from bench.cli.options import choice_option, examples, load_saved_model, saved_model_options

EXAMPLES = examples(
    "bench export --run RUN_ID --to tflite --quantize dynamic --out fer.tflite",
    "bench export --model model.keras --to saved_model --out fer_savedmodel",
    "bench export --run RUN_ID --to onnx --out fer.onnx",
    "bench export --run RUN_ID --to tflite --out fer.tflite --format json > export.json",
)

FILE_TYPES = ("tflite", "saved_model", "onnx")


def _report_format(ctx, param, value):
    """``--format`` means the report's style here as in every command; the file type is ``--to``. A file
    type given as ``--format`` (this command's old spelling) gets a one-line error naming the fix."""
    if value in FILE_TYPES:
        raise click.BadParameter(f"the file type is now --to {value}; --format chooses the report: table or json")
    if value not in ("table", "json"):
        raise click.BadParameter(f"'{value}' is not one of table, json")
    return value


@click.command(epilog=EXAMPLES)
@saved_model_options(keras_only=True)
@click.option("--to", "file_type", type=click.Choice(FILE_TYPES), required=True, help="File type to write.")
@choice_option(
    "--quantize",
    ["none", "dynamic", "float16"],
    "TFLite weights: int8 (dynamic) or float16; smaller, checked against a looser tolerance.",
)
@click.option("--out", required=True, type=click.Path(), help="The .tflite/.onnx file or SavedModel folder to write.")
@click.option(
    "--format",
    "fmt",
    default="table",
    show_default=True,
    callback=_report_format,
    metavar="[table|json]",
    help="Style of the report printed after the export.",
)
@friendly_errors
def export(run_id, model_path, tracking_uri, file_type, quantize, out, fmt):
    """Export a trained model to TensorFlow Lite, SavedModel or ONNX and check it agrees with the Keras model.

    An ONNX file carries the class names, so bench predict --model M.onnx runs it with ONNX Runtime."""
    from bench.inference.export import export_model

    load_tensorflow()
    model = load_saved_model(run_id, model_path, tracking_uri, keras_only=True)
    report = export_model(model, file_type, Path(out), quantize)
    click.echo(json.dumps(report.as_dict(), indent=2) if fmt == "json" else export_text(report))
    if not report.agrees:
        click.echo(f"error: the export fails its check: {report.failure}", err=True)
        sys.exit(1)


def export_text(report) -> str:
    """The export report in words: file sizes, the agreement check, single-face latencies, batch speed."""
    verdict = "agrees" if report.agrees else "DISAGREES"
    return (
        f"wrote {report.path} ({report.size_mb:.2f} MB; .keras {report.keras_size_mb:.2f} MB)\n"
        f"check on {report.samples} faces: {verdict} with the Keras model (max |diff| {report.max_abs_diff:.2e}, "
        f"tolerance {report.tolerance:g} for quantize={report.quantize}; same class for "
        f"{report.argmax_agreement:.0%}, {_confident_text(report)})\n"
        f"single-face latency: Keras {report.latency_ms_keras:.2f} ms, exported {report.latency_ms_exported:.2f} ms\n"
        f"{report.samples} faces at once: Keras {report.faces_per_s_keras:.0f} faces/s, "
        f"exported {report.faces_per_s_exported:.0f} faces/s{_one_at_a_time(report)}\n"
        f"output columns ({len(report.class_names)} classes): {', '.join(report.class_names)}"
    )


def _one_at_a_time(report) -> str:
    return " (one face per call: the .tflite file takes batches of 1)" if report.format == "tflite" else ""


def _confident_text(report) -> str:
    if not report.confident_samples:
        return "no face confident enough to judge the class on"
    return f"{report.confident_agreement:.0%} of the {report.confident_samples} confident faces"
