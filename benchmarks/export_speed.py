"""Inference speed of one trained model as Keras, TFLite and ONNX Runtime, and whether they agree.

Each format goes through ``bench export`` (:func:`bench.inference.export.export_model`) into a temporary
folder, whose report already times the Keras model and the exported file on the same faces: per-face
latency (one face per call, median of 20) and throughput (``--samples`` faces per call, median of 5;
TFLite takes one face per call, so its throughput is its latency's in a loop). This script adds nothing
to those figures; it collects them, and with ``--data FER2013.csv[.gz]`` compares every exported file's
probabilities with Keras' on real test faces (``--faces`` of them), which the export check's synthetic
faces only stand in for.

    python benchmarks/export_speed.py --run RUN_ID --tracking-uri sqlite:///mlruns/mlflow.db
        [--formats tflite onnx] [--samples 64] [--data fer2013.csv.gz --faces 2000] [--json FILE]

Prints one JSON line per format and a final JSON line for Keras; ``--json FILE`` writes all of them as a
list. Say whether the machine was idle when quoting the figures: every format shares its CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a bench run whose model.keras is measured")
    source.add_argument("--model", help="a .keras file")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--formats", nargs="+", default=["tflite", "onnx"], choices=["tflite", "saved_model", "onnx"])
    parser.add_argument("--samples", type=int, default=64, help="faces per throughput call and in the export check")
    parser.add_argument("--data", default=None, help="FER2013 CSV: compare probabilities on its test faces")
    parser.add_argument("--faces", type=int, default=2000, help="how many test faces --data compares on")
    parser.add_argument("--json", default=None, help="also write every row to this file")
    return parser.parse_args(argv)


def fer2013_test_faces(path: str, n: int) -> np.ndarray:
    """The first ``n`` faces of the data's test split (PrivateTest), as the model takes them."""
    from bench.data.fer2013 import load_csv

    data = load_csv(Path(path))
    faces = data.images[data.splits == "test"][:n]
    return faces.astype(np.float32)[..., None]


def agreement(reference: np.ndarray, exported: np.ndarray) -> dict:
    """Max and mean |difference| of probabilities, and how often the predicted class is the same."""
    diff = np.abs(reference - exported)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "same_class": float(np.mean(reference.argmax(1) == exported.argmax(1))),
    }


def measure(model, fmt: str, folder: Path, samples: int, faces: np.ndarray | None, reference) -> dict:
    """One format's row: the export report's figures, plus its agreement on ``faces`` when given."""
    from bench.inference.export import export_model, load_exported

    out = folder / ("saved" if fmt == "saved_model" else f"model.{fmt}")
    report = export_model(model, fmt, out, samples=samples)
    row = {
        "format": fmt,
        "agrees": report.agrees,
        "max_abs_diff_samples": report.max_abs_diff,
        "latency_ms": report.latency_ms_exported,
        "faces_per_s": report.faces_per_s_exported,
        "keras_latency_ms": report.latency_ms_keras,  # Keras timed again beside each format
        "keras_faces_per_s": report.faces_per_s_keras,
        "size_mb": report.size_mb,
        "samples": report.samples,
    }
    if faces is not None:
        row["fer2013_test_faces"] = len(faces)
        row |= {f"fer2013_{k}": v for k, v in agreement(reference, load_exported(fmt, out)(faces)).items()}
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    from bench.cli.base import load_tensorflow
    from bench.inference.classifier import load_keras_model, model_from_run, predict_probs

    load_tensorflow()
    model = model_from_run(args.run, args.tracking_uri) if args.run else load_keras_model(args.model)
    faces = fer2013_test_faces(args.data, args.faces) if args.data else None
    reference = predict_probs(model, faces[..., 0]) if faces is not None else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-export-speed-") as tmp:
        for fmt in args.formats:
            rows.append(measure(model, fmt, Path(tmp), args.samples, faces, reference))
            print(json.dumps(rows[-1]), flush=True)
    keras_row = {
        "format": "keras",
        "latency_ms": float(np.median([r["keras_latency_ms"] for r in rows])),
        "faces_per_s": float(np.median([r["keras_faces_per_s"] for r in rows])),
        "model": args.run or args.model,
    }
    rows.append(keras_row)
    print(json.dumps(keras_row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all(r.get("agrees", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
