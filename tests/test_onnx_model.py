""".onnx files in bench predict: loading with ONNX Runtime, the metadata they must carry, one-line errors.

The graphs are built here with onnx.helper (a linear layer and a softmax over the 2,304 pixels), so these
tests need neither TensorFlow nor an export; tests/test_onnx_export.py exports real bench models."""

import json
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from bench import CLASS_NAMES
from bench.cli import cli
from bench.cli.options import is_onnx_path, load_saved_model
from bench.errors import BenchError
from bench.inference.classifier import FaceClassifier, is_onnx_model, load_model_file
from bench.inference.onnx_model import CLASS_NAMES_KEY, INPUT_SHAPE_KEY, load_onnx_model, model_metadata


def linear_onnx(path, metadata=None, side=48, classes=7, seed=0):
    """faces (n, side, side, 1) -> softmax(flatten(faces) @ W): a stand-in for an exported bench model."""
    weights = np.random.default_rng(seed).normal(0, 0.01, (side * side, classes)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["faces"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "linear",
        [helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["n", side, side, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", classes])],
        [helper.make_tensor("w", TensorProto.FLOAT, weights.shape, weights.ravel())],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8  # what ONNX Runtime 1.32 reads; onnx 1.23 writes a newer one by default
    if metadata is not None:
        helper.set_model_props(proto, metadata)
    onnx.save(proto, str(path))
    return path, weights


def softmax_of(weights, faces):
    logits = faces.reshape(len(faces), -1).astype(np.float64) @ weights
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def faces(n=3, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48)).astype(np.uint8)


def test_a_described_onnx_file_runs_as_a_face_classifier_with_and_without_tta(tmp_path):
    path, weights = linear_onnx(tmp_path / "m.onnx", model_metadata(CLASS_NAMES, temperature=1.5))
    model = load_model_file(path)
    assert is_onnx_model(model) and model.class_names == CLASS_NAMES and model.input_shape == (48, 48, 1)
    x = faces()
    np.testing.assert_allclose(FaceClassifier(model)(x), softmax_of(weights, x), atol=1e-5)
    flipped = (softmax_of(weights, x) + softmax_of(weights, x[:, :, ::-1])) / 2
    np.testing.assert_allclose(FaceClassifier(model, tta="flip")(x), flipped, atol=1e-5)
    assert FaceClassifier(model)(x[:0]).shape == (0, 7)


def test_the_class_names_come_from_the_file(tmp_path):
    names = ("a", "b", "c")
    path, _ = linear_onnx(tmp_path / "three.onnx", model_metadata(names), classes=3)
    assert FaceClassifier(load_onnx_model(path)).class_names == names


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({}, "no bench.class_names or bench.input_shape metadata"),
        ({INPUT_SHAPE_KEY: "[48, 48, 1]"}, "no bench.class_names metadata"),
        ({CLASS_NAMES_KEY: "angry, happy", INPUT_SHAPE_KEY: "[48, 48, 1]"}, "malformed bench metadata"),
        ({CLASS_NAMES_KEY: json.dumps(["a", "b"]), INPUT_SHAPE_KEY: "[48, 48, 1]"}, "7 outputs but 2 class names"),
    ],
)
def test_undescribed_or_misdescribed_files_are_one_line_errors(tmp_path, metadata, message):
    path, _ = linear_onnx(tmp_path / "m.onnx", metadata)
    with pytest.raises(BenchError, match=message) as caught:
        load_onnx_model(path)
    assert len(str(caught.value).splitlines()) == 1 and "bench export --to onnx" in str(caught.value)


def test_a_graph_for_other_faces_is_refused(tmp_path):
    path, _ = linear_onnx(tmp_path / "m.onnx", model_metadata(CLASS_NAMES), side=32)
    with pytest.raises(BenchError, match=r"takes input of shape \(32, 32, 1\), not \(48, 48, 1\)"):
        load_onnx_model(path)


def test_missing_and_malformed_files_are_one_line_errors_in_predict(tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), faces(1)[0])
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf \x00\xff" * 10)
    good, _ = linear_onnx(tmp_path / "good.onnx", model_metadata(CLASS_NAMES))
    (tmp_path / "cut.onnx").write_bytes(good.read_bytes()[:200])  # truncated: the weights are cut off
    for name, message in [
        ("junk.onnx", "cannot load"),
        ("cut.onnx", "cannot load"),
        ("none.onnx", "does not exist"),
    ]:
        result = CliRunner().invoke(cli, ["predict", "--model", str(tmp_path / name), str(tmp_path / "face.png")])
        assert result.exit_code == 2, (name, result.output)
        assert message in result.stderr and len(result.stderr.splitlines()) == 1, (name, result.stderr)


def test_keras_only_commands_refuse_an_onnx_file(tmp_path):
    path, _ = linear_onnx(tmp_path / "m.onnx", model_metadata(CLASS_NAMES))
    assert is_onnx_path(path) and is_onnx_path("M.ONNX") and not is_onnx_path("m.keras") and not is_onnx_path(None)
    with pytest.raises(BenchError, match="needs the Keras model"):
        load_saved_model(None, str(path), None, keras_only=True)
    assert is_onnx_model(load_saved_model(None, str(path), None))
    result = CliRunner().invoke(cli, ["export", "--model", str(path), "--to", "tflite", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "ONNX files run in bench predict" in result.stderr


def test_missing_onnxruntime_names_the_pip_command(tmp_path, monkeypatch):
    path, _ = linear_onnx(tmp_path / "m.onnx", model_metadata(CLASS_NAMES))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(BenchError, match="pip install onnxruntime"):
        load_onnx_model(path)


def test_predict_with_an_onnx_file_imports_neither_tensorflow_nor_keras(tmp_path):
    """The point of ONNX Runtime on a device: no TensorFlow (seconds to import, hundreds of MB)."""
    path, weights = linear_onnx(tmp_path / "m.onnx", model_metadata(CLASS_NAMES))
    x = faces(1)
    cv2.imwrite(str(tmp_path / "face.png"), x[0])
    script = (
        "import json, sys; from click.testing import CliRunner; from bench.cli import cli; "
        f"r = CliRunner().invoke(cli, ['predict', '--model', {str(path)!r}, '--no-detect', '--format', 'json', "
        f"{str(tmp_path / 'face.png')!r}]); "
        "print(json.dumps([r.exit_code, r.stdout, 'tensorflow' in sys.modules, 'keras' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    code, stdout, tensorflow, keras = json.loads(done.stdout.splitlines()[-1])
    assert code == 0 and not tensorflow and not keras, done.stdout
    (face,) = json.loads(stdout)["faces"]
    np.testing.assert_allclose([face["probabilities"][c] for c in CLASS_NAMES], softmax_of(weights, x)[0], atol=1e-5)
