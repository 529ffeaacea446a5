"""bench export --to onnx: a trained bench model as ONNX, checked against Keras, then run by bench predict."""

import json
import sys

import cv2
import keras
import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.data.synthetic import synthesize
from bench.errors import BenchError
from bench.inference.classifier import load_keras_model
from bench.inference.export import TOLERANCE, export_model, sample_faces
from bench.inference.onnx_model import load_onnx_model
from bench.models import build_model


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained_file(tmp_path_factory):
    """A baseline_cnn fitted for a few steps on synthetic faces (confident outputs for the judge to check
    classes on), calibrated with temperature 2."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    images, labels, _ = synthesize(96, seed=3)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(images[..., None].astype("float32"), labels, epochs=4, batch_size=32, verbose=0)
    model.set_temperature(2.0)
    path = tmp_path_factory.mktemp("onnx") / "trained.keras"
    model.save(path)
    return path


def test_onnx_export_agrees_with_keras_and_keeps_the_temperature(trained_file, tmp_path):
    model = load_keras_model(trained_file)
    report = export_model(model, "onnx", tmp_path / "m.onnx")
    assert report.agrees, report.failure
    assert report.max_abs_diff <= TOLERANCE["none"] and report.confident_samples > 0
    assert report.confident_agreement == 1.0 and report.class_names == model.class_names
    assert report.latency_ms_exported > 0 and report.faces_per_s_exported > 0 and report.faces_per_s_keras > 0
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["bench.class_names"]) == list(model.class_names) and props["bench.temperature"] == "2.0"
    x = sample_faces()
    exported = load_onnx_model(tmp_path / "m.onnx")(x)
    model.set_temperature(1.0)
    untempered = np.asarray(model(x, training=False))
    assert np.max(np.abs(exported - untempered)) > 10 * TOLERANCE["none"]  # the 2.0 is in the file's graph


def test_upscaling_calibrated_hybrid_model_exports_its_resize_gelu_and_temperature(tmp_path):
    """image_size 64: the bicubic Resizing becomes matrix products and the temperature its own layer; the
    hybrid head's exact GELU needs bench's Erfc handler, the fused BatchNorm (the cpu recipe's) converts."""
    keras.utils.set_random_seed(1)
    small = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}
    model, _ = build_model(backbone="baseline_cnn", head="hybrid", image_size=64, head_options=small, batchnorm="fused")
    model.set_temperature(0.5)  # sharpens the near-uniform outputs of a fresh model: a visible difference
    report = export_model(model, "onnx", tmp_path / "up.onnx")
    assert report.agrees, report.failure
    assert load_onnx_model(tmp_path / "up.onnx")(sample_faces(2)).shape == (2, 7)


def test_predict_labels_the_same_faces_alike_from_keras_and_onnx(trained_file, tmp_path):
    out = tmp_path / "m.onnx"
    result = invoke("export", "--model", trained_file, "--to", "onnx", "--out", out, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["agrees"] is True
    faces = synthesize(6, seed=9)[0]
    for i, face in enumerate(faces):
        cv2.imwrite(str(tmp_path / f"face{i}.png"), face)
    inputs = [tmp_path / f"face{i}.png" for i in range(len(faces))]
    for tta in ("none", "flip"):
        runs = [
            invoke("predict", "--model", m, "--no-detect", "--tta", tta, "--format", "json", *inputs)
            for m in (trained_file, out)
        ]
        assert all(r.exit_code == 0 for r in runs), [r.output for r in runs]
        keras_faces, onnx_faces = (json.loads(r.stdout)["faces"] for r in runs)
        assert [f["emotion"] for f in onnx_faces] == [f["emotion"] for f in keras_faces]
        for k, o in zip(keras_faces, onnx_faces, strict=True):
            np.testing.assert_allclose(list(o["probabilities"].values()), list(k["probabilities"].values()), atol=1e-4)
    again = invoke("export", "--model", trained_file, "--to", "onnx", "--out", out)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_onnx_export_refuses_quantize_and_names_missing_exporters(trained_file, tmp_path, monkeypatch):
    result = invoke("export", "--model", trained_file, "--to", "onnx", "--quantize", "dynamic", "--out", tmp_path / "q")
    assert result.exit_code == 2 and "--quantize applies to --to tflite only; drop it for onnx" in result.stderr
    assert "onnx" in invoke("export", "--help").output
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now raises ImportError
    with pytest.raises(BenchError, match=r'pip install "tf2onnx>=1.17" "onnx>=1.23"'):
        export_model(load_keras_model(trained_file), "onnx", tmp_path / "none.onnx")
    assert not (tmp_path / "none.onnx").exists()
