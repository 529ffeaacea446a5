"""bench explain end to end on a saved model (bench/cli/explain_cmd.py, bench/explain/faces.py, report.py),
and its bad inputs as one-line errors."""

import json
import re

import cv2
import keras
import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.data.synthetic import EXPRESSIONS, draw_face
from bench.errors import BenchError
from bench.explain.faces import check_inputs, find_faces
from bench.inference.classifier import FaceClassifier, load_keras_model
from bench.models import build_model

TINY_HYBRID = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}
FACE_AT = (100, 200, 144)  # top, left, side of the face pasted into the test frame


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="hybrid", head_options=TINY_HYBRID)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


def synthetic_face(seed: int = 0) -> np.ndarray:
    return np.round(draw_face(np.array(EXPRESSIONS["happy"]), np.random.default_rng(seed)) * 255).astype(np.uint8)


@pytest.fixture
def images(tmp_path):
    """A frame with a face in it, a blank frame, and a 48x48 crop beside the folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    top, left, side = FACE_AT
    frame = np.full((480, 640), 120, np.uint8)
    frame[top : top + side, left : left + side] = cv2.resize(
        synthetic_face(), (side, side), interpolation=cv2.INTER_CUBIC
    )
    cv2.imwrite(str(folder / "frame.png"), frame)
    cv2.imwrite(str(folder / "blank.png"), np.full((240, 320), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "crop.png"), synthetic_face(1))
    return folder


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_faces_are_the_crops_predict_classifies(model_file, images):
    model = load_keras_model(model_file)
    classifier = FaceClassifier(model)
    found = find_faces(classifier, [str(images)])
    assert len(found.crops) == len(found.records) == 1 and found.crops.shape == (1, 48, 48)
    (record,) = found.records
    top, left, side = FACE_AT
    assert abs(record.box[0] - left) < side * 0.3 and abs(record.box[1] - top) < side * 0.3
    probs = classifier(found.crops)[0]
    assert record.probabilities == pytest.approx(dict(zip(classifier.class_names, probs.tolist(), strict=True)))
    assert found.notes == [f"note: {images / 'blank.png'}: no face found"]
    crop = find_faces(classifier, [str(images.parent / "crop.png")], detect=False)
    assert np.array_equal(crop.crops[0], synthetic_face(1))  # --no-detect: the image itself, 48x48 already


def test_explain_writes_a_png_per_face_and_one_page(model_file, images, tmp_path):
    out = tmp_path / "out"
    result = invoke("explain", "--model", model_file, images, "--out", out, "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["explained"] == row["predicted"] and 0 < row["probability"] <= 1
    assert re.fullmatch(r".*/001-frame\.png", row["png"])
    html = (out / "index.html").read_text()
    assert html.count('src="data:image/png;base64,') == 1 and "attention" in html and "pre-softmax logit" in html
    assert "blank.png: no face found" in result.stderr


def test_explain_any_class_of_a_crop_without_detection(model_file, images, tmp_path):
    result = invoke(
        "explain",
        "--model",
        model_file,
        images.parent / "crop.png",
        "--no-detect",
        "--class",
        "fear",
        "--out",
        tmp_path / "o",
    )
    assert result.exit_code == 0, result.output
    assert "fear" in result.stdout.splitlines()[2] and "001-crop.png" in result.stdout


def test_bad_inputs_are_one_line_errors(model_file, images, tmp_path):
    assert "does not exist" in one_error_line(invoke("explain", "--model", model_file, tmp_path / "nope.png"))
    no_face = one_error_line(invoke("explain", "--model", model_file, images / "blank.png", "--out", tmp_path / "o"))
    assert "no face found" in no_face and "--no-detect" in no_face
    wrong = one_error_line(invoke("explain", "--model", model_file, images, "--class", "joy", "--out", tmp_path / "o"))
    assert "no class 'joy'" in wrong and "neutral" in wrong
    assert "give images" in one_error_line(invoke("explain", "--model", model_file))
    (tmp_path / "clip.mp4").write_bytes(b"0")
    assert "is a video" in one_error_line(invoke("explain", "--model", model_file, tmp_path / "clip.mp4"))


def test_a_model_without_a_spatial_map_is_a_one_line_error(images, tmp_path):
    model, _ = build_model(backbone="baseline_cnn", head="linear", image_size=8)  # a 1x1 feature map
    model.save(tmp_path / "flat.keras")
    line = one_error_line(invoke("explain", "--model", tmp_path / "flat.keras", images, "--out", tmp_path / "o"))
    assert "1x1" in line and "--set data.image_size=" in line


def test_check_inputs_expands_folders_and_leaves_their_videos_out(images):
    (images / "clip.mp4").write_bytes(b"0")
    assert sorted(p.name for p in check_inputs([str(images)])) == ["blank.png", "frame.png"]
    (images / "empty").mkdir()
    with pytest.raises(BenchError, match="no image files"):
        check_inputs([str(images / "empty")])


def test_help_ends_with_examples_of_explain():
    lines = invoke("explain", "--help").output.splitlines()
    examples = lines[lines.index("  Examples:") + 1 :]
    assert examples and all(line.split()[:2] == ["bench", "explain"] for line in examples)


def test_per_class_averages_over_a_split_go_into_a_grid_and_the_page(model_file, tmp_path):
    out = tmp_path / "o"
    result = invoke("explain", "--model", model_file, "--data", "synthetic:120:2", "--per-class", 3, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "per-class.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "index.html").read_text()
    assert "<h2>per class</h2>" in html and html.count("data:image/png;base64,") == 1


def test_per_class_data_with_other_classes_than_the_model_is_a_one_line_error(model_file, tmp_path):
    root = tmp_path / "folders"
    for split in ("train", "test"):
        for name in ("calm", "tense"):
            (root / split / name).mkdir(parents=True)
            cv2.imwrite(str(root / split / name / "a.png"), synthetic_face())
    line = one_error_line(invoke("explain", "--model", model_file, "--data", root, "--out", tmp_path / "o"))
    assert "not the model's" in line and "calm, tense" in line


def test_kernels_and_feature_maps_are_drawn_into_the_page(model_file, images, tmp_path):
    out = tmp_path / "o"
    crop = images.parent / "crop.png"
    result = invoke("explain", "--model", model_file, crop, "--no-detect", "--kernels", "--feature-maps", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "kernels.png").is_file() and (out / "feature-maps.png").is_file()
    assert "<h2>inside the backbone</h2>" in (out / "index.html").read_text()
    assert "give an image" in one_error_line(invoke("explain", "--model", model_file, "--data", "x", "--feature-maps"))
