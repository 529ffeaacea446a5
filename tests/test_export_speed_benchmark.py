"""benchmarks/export_speed.py: Keras, TFLite and ONNX Runtime speed from bench export's own reports."""

import json

import keras
import numpy as np

from bench.models import build_model
from tests.conftest import load_benchmark


def test_rows_per_format_with_agreement_on_csv_test_faces(tmp_path, synthetic_csv, capsys):
    script = load_benchmark("export_speed")
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    model.save(tmp_path / "m.keras")
    out = tmp_path / "rows.json"
    argv = ["--model", str(tmp_path / "m.keras"), "--formats", "onnx", "tflite", "--samples", "4"]
    assert script.main([*argv, "--data", str(synthetic_csv), "--faces", "12", "--json", str(out)]) == 0
    onnx_row, tflite_row, keras_row = json.loads(out.read_text())
    assert [onnx_row["format"], tflite_row["format"], keras_row["format"]] == ["onnx", "tflite", "keras"]
    for row in (onnx_row, tflite_row):
        assert row["agrees"] and row["latency_ms"] > 0 and row["faces_per_s"] > 0 and row["samples"] == 4
        assert row["fer2013_test_faces"] == 12 and row["fer2013_max_abs_diff"] < 1e-4
        assert row["fer2013_same_class"] == 1.0
    medians = [np.median([onnx_row[k], tflite_row[k]]) for k in ("keras_latency_ms", "keras_faces_per_s")]
    assert [keras_row["latency_ms"], keras_row["faces_per_s"]] == medians
    printed = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert printed == [onnx_row, tflite_row, keras_row]
