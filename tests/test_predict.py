"""bench predict and bench export on images, frames and videos the tests draw themselves."""

import csv
import io
import json

import cv2
import keras
import numpy as np
import pytest
from click.testing import CliRunner

from bench import CLASS_NAMES
from bench.cli import cli
from bench.data.synthetic import EXPRESSIONS, draw_face
from bench.errors import BenchError
from bench.inference.classifier import FaceClassifier, load_keras_model
from bench.inference.export import export_model
from bench.inference.faces import Box, FaceDetector, UnsupportedImage, crop_face, expand_box, to_uint8
from bench.inference.predict import PredictOptions, annotated_path, common_folder, predict_files
from bench.inference.smoothing import LabelSmoother
from bench.models import build_model

FACE_AT = (100, 200, 144)  # top, left, side of the face pasted into test frames


def synthetic_face(seed: int = 0) -> np.ndarray:
    face = draw_face(np.array(EXPRESSIONS["neutral"]), np.random.default_rng(seed))
    return np.round(face * 255).astype(np.uint8)


def frame_with_face(shift: int = 0) -> np.ndarray:
    """A 640x480 grey BGR frame with one synthetic face pasted in (the Haar cascade finds it)."""
    top, left, side = FACE_AT
    frame = np.full((480, 640), 120, np.uint8)
    frame[top : top + side, left + shift : left + shift + side] = cv2.resize(
        synthetic_face(), (side, side), interpolation=cv2.INTER_CUBIC
    )
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "face.png"), frame_with_face())
    cv2.imwrite(str(folder / "blank.png"), np.full((240, 320, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "crop.png"), synthetic_face())
    return folder


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_box_margin_is_clamped_to_the_frame_and_crop_is_raw_48x48():
    assert expand_box(Box(5, 5, 20, 20), 0.5, 30, 28) == Box(0, 0, 30, 28)
    assert expand_box(Box(10, 10, 10, 10), 0.1, 100, 100) == Box(9, 9, 12, 12)
    gray = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    crop = crop_face(gray, Box(0, 0, 48, 48))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert np.array_equal(crop, gray[:48, :48])  # same size: the raw pixels, nothing normalized


def test_label_smoother_takes_the_mode_per_face_and_follows_boxes():
    smoother = LabelSmoother(window=3)
    a, b = Box(0, 0, 50, 50), Box(300, 300, 50, 50)
    assert smoother.update([a], ["happy"]) == ["happy"]
    assert smoother.update([a], ["sad"]) == ["sad"]  # a tie goes to the latest label
    assert smoother.update([a], ["happy"]) == ["happy"]
    assert smoother.update([Box(2, 2, 50, 50), b], ["happy", "fear"]) == ["happy", "fear"]  # b is a new face
    assert smoother.update([a], ["sad"]) == ["happy"]  # happy, happy, sad
    assert smoother.update([a], ["sad"]) == ["sad"]  # window 3: happy, sad, sad
    with pytest.raises(ValueError, match="window"):
        LabelSmoother(window=0)


def test_detector_finds_the_pasted_face_and_not_a_blank_frame(model_file, images, tmp_path):
    classifier = FaceClassifier(load_keras_model(model_file))
    report = predict_files(classifier, [str(images)], PredictOptions(out_dir=tmp_path / "out"))
    by_name = {r.source.rsplit("/", 1)[-1]: r for r in report.inputs}
    assert by_name["blank.png"].faces == 0 and by_name["blank.png"].error is None
    assert by_name["face.png"].faces == 1
    (face,) = report.faces
    top, left, side = FACE_AT
    assert Box(*face.box).iou(Box(left, top, side, side)) > 0.4
    assert set(face.probabilities) == set(CLASS_NAMES)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.emotion == max(face.probabilities, key=face.probabilities.get)
    gray = cv2.cvtColor(frame_with_face(), cv2.COLOR_BGR2GRAY)
    for width in (0, 320):  # full size and the downscaled search find the same face
        (found,) = FaceDetector(max_width=width).detect(gray)
        assert found.iou(Box(left, top, side, side)) > 0.4
    annotated = cv2.imread(by_name["face.png"].annotated)
    assert annotated.shape == (480, 640, 3)
    assert not np.array_equal(annotated, frame_with_face())  # the box and label were drawn


def test_no_detect_classifies_a_crop_exactly_like_the_model(model_file, tmp_path, images):
    result = invoke("predict", "--model", model_file, "--no-detect", "--format", "json", tmp_path / "crop.png")
    assert result.exit_code == 0, result.output
    (face,) = json.loads(result.stdout)["faces"]
    assert face["box"] == [0, 0, 48, 48]
    expected = keras.models.load_model(model_file).predict(synthetic_face()[None, ..., None].astype("float32"))[0]
    np.testing.assert_allclose([face["probabilities"][c] for c in CLASS_NAMES], expected, atol=1e-5)


def test_video_every_nth_frame_smoothed_timed_and_annotated(model_file, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
    for i in range(12):
        writer.write(frame_with_face(shift=i))
    writer.release()
    out = tmp_path / "out"
    result = invoke("predict", "--model", model_file, "--stride", 2, "--out", out, "--format", "json", video)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    frames = sorted({f["frame"] for f in payload["faces"]})
    assert frames and set(frames) <= {0, 2, 4, 6, 8, 10} and len(frames) >= 4
    assert all(f["smoothed_emotion"] in CLASS_NAMES for f in payload["faces"])
    assert payload["inputs"][0]["frames"] == 6 and payload["video"]["fps"] > 0
    assert set(payload["stage_ms"]) >= {"detect", "preprocess", "predict", "draw"}
    assert "frames/s" in result.stderr
    written = cv2.VideoCapture(str(out / "clip.mp4.annotated.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    written.release()


def test_csv_has_one_row_per_face_with_all_probabilities(model_file, images):
    result = invoke("predict", "--model", model_file, "--format", "csv", images)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1
    assert set(rows[0]) >= {"source", "frame", "x", "y", "w", "h", "emotion", "confidence"}
    assert sum(float(rows[0][f"p_{c}"]) for c in CLASS_NAMES) == pytest.approx(1.0, abs=1e-4)
    assert "blank.png: no face found" in result.stderr


def test_bad_inputs_are_one_line_each_and_good_ones_still_run(model_file, images, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    result = invoke(
        "predict", "--model", model_file, "--format", "json", fake, tmp_path / "nope.jpg", images / "face.png"
    )
    assert result.exit_code == 1
    assert len(json.loads(result.stdout)["faces"]) == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "fake.png" in errors[0] and "nope.jpg: no such file" in errors[1]


def test_model_errors_are_one_line(tmp_path, images):
    wrong = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(7)])
    wrong.save(tmp_path / "wrong.keras")
    result = invoke("predict", "--model", tmp_path / "wrong.keras", images)
    assert result.exit_code == 2 and "(48, 48, 1)" in result.stderr and len(result.stderr.splitlines()) == 1
    result = invoke("predict", "--run", "0123456789abcdef", images)
    assert result.exit_code == 2 and "no MLflow tracking store" in result.stderr  # none yet; none created
    from bench import tracking as trk

    trk.ensure_experiment("models", trk.connect(None))
    result = invoke("predict", "--run", "0123456789abcdef", images)
    assert result.exit_code == 2 and "no MLflow run" in result.stderr
    result = invoke("predict", images)
    assert result.exit_code == 2 and "exactly one of --run" in result.stderr


@pytest.mark.parametrize(("fmt", "quantize"), [("tflite", "none"), ("tflite", "float16"), ("tflite", "dynamic")])
def test_tflite_export_agrees_with_keras(model_file, tmp_path, fmt, quantize):
    report = export_model(load_keras_model(model_file), fmt, tmp_path / "m.tflite", quantize)
    assert report.agrees and report.max_abs_diff <= report.tolerance
    assert report.size_mb > 0 and report.latency_ms_exported > 0 and report.samples == 32
    if quantize != "none":
        assert report.size_mb < report.keras_size_mb


def test_inference_loads_a_trained_model_without_its_optimizer(tmp_path):
    import warnings

    model, _ = build_model(backbone="baseline_cnn", head="linear")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(np.zeros((2, *model.input_shape[1:]), "float32"), np.zeros(2, "int64"), verbose=0)
    model.save(tmp_path / "trained.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_keras_model(tmp_path / "trained.keras")
    assert getattr(loaded, "optimizer", None) is None and not [w for w in caught if "optimizer" in str(w.message)]


def test_export_judges_the_class_only_where_the_keras_model_is_confident():
    from bench.inference.export import judge

    uniform = np.full((10, 7), 1 / 7)
    uniform[:, 0] += 0.004  # near-uniform: class 0 by a hair
    drifted = uniform.copy()
    drifted[:, 1] += 0.008  # within 5e-2, yet every class flips: not a failure
    assert judge(uniform, drifted, 5e-2) == (0, None, None)
    reference = np.full((10, 7), 0.25 / 5)
    reference[:, 0], reference[:, 1] = 0.45, 0.3  # margin 0.15 > tolerance 0.1: confident
    exported = reference.copy()
    exported[:2, 0], exported[:2, 1] = 0.36, 0.39  # each within 0.1, the class swaps on 2 of 10
    n, agreement, failure = judge(reference, exported, 0.1)
    assert (n, agreement) == (10, 0.8) and "class differs on 20% of the 10 faces" in failure
    exported[:2, 0] = 0.3
    n, agreement, failure = judge(reference, exported, 0.1)
    assert failure.startswith("probabilities differ by up to 1.50e-01, over the tolerance 0.1")
    assert judge(reference, reference, 0.1) == (10, 1.0, None)


def test_saved_model_and_upscaling_tflite_export_through_the_cli(tmp_path):
    keras.utils.set_random_seed(1)
    model, spec = build_model(backbone="baseline_cnn", head="linear", image_size=64)  # bicubic resize inside
    assert spec.image_size == 64
    model.save(tmp_path / "up.keras")
    result = invoke(
        "export", "--model", tmp_path / "up.keras", "--to", "tflite", "--out", tmp_path / "up.tflite", "--format=json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["agrees"] is True
    result = invoke("export", "--model", tmp_path / "up.keras", "--to", "saved_model", "--out", tmp_path / "sm")
    assert result.exit_code == 0, result.output
    assert "agrees with the Keras model" in result.stdout and (tmp_path / "sm" / "saved_model.pb").is_file()
    result = invoke("export", "--model", tmp_path / "up.keras", "--to", "saved_model", "--out", tmp_path / "sm")
    assert result.exit_code == 2 and "already exists" in result.stderr
    with pytest.raises(BenchError, match="tflite only"):
        export_model(model, "saved_model", tmp_path / "sm2", "dynamic")


def test_a_saved_hybrid_model_loads_in_a_fresh_process(tmp_path):
    """Keras finds bench's registered layers by name only: loading must import them itself."""
    import subprocess
    import sys

    model, _ = build_model(
        backbone="baseline_cnn",
        head="hybrid",
        head_options={
            "projection_dim": 16,
            "num_heads": 2,
            "ffn_multiplier": 1.0,
            "branch_units": 8,
            "fusion_units": 16,
        },
    )
    model.save(tmp_path / "hybrid.keras")
    cv2.imwrite(str(tmp_path / "crop.png"), synthetic_face())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.cli",
            "predict",
            "--model",
            str(tmp_path / "hybrid.keras"),
            "--no-detect",
            "--format",
            "json",
            str(tmp_path / "crop.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(json.loads(done.stdout)["faces"]) == 1


def test_to_uint8_scales_16_bit_and_float_and_rejects_the_rest():
    assert to_uint8(np.array([[0, 257, 65535]], np.uint16)).tolist() == [[0, 1, 255]]
    assert to_uint8(np.array([[0.0, 0.5, 1.0]], np.float32)).tolist() == [[0, 128, 255]]
    assert to_uint8(np.array([[0.0, 12.0, 255.0]], np.float64)).tolist() == [[0, 12, 255]]  # already 0-255
    eight = np.array([[3, 200]], np.uint8)
    assert to_uint8(eight) is eight
    for bad in (np.array([[-1.0, 2.0]], np.float32), np.array([[np.nan]], np.float32), np.array([[1]], np.int32)):
        with pytest.raises(UnsupportedImage, match="save it as an 8- or 16-bit image"):
            to_uint8(bad)


def test_16_bit_and_float_images_predict_like_8_bit_and_bad_ones_do_not_stop_the_rest(model_file, tmp_path):
    crop = synthetic_face()
    cv2.imwrite(str(tmp_path / "a8.png"), crop)
    cv2.imwrite(str(tmp_path / "b16.png"), crop.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "c32.tiff"), crop.astype(np.float32) / 255)
    cv2.imwrite(str(tmp_path / "d.tiff"), np.full((48, 48), -5.0, np.float32))  # no 0-255 reading
    cv2.imwrite(str(tmp_path / "e.png"), crop)
    inputs = [tmp_path / n for n in ("a8.png", "b16.png", "c32.tiff", "d.tiff", "e.png")]
    result = invoke("predict", "--model", model_file, "--no-detect", "--format", "json", *inputs)
    assert result.exit_code == 1
    faces = {f["source"].rsplit("/", 1)[-1]: f["probabilities"] for f in json.loads(result.stdout)["faces"]}
    assert sorted(faces) == ["a8.png", "b16.png", "c32.tiff", "e.png"]
    for name in ("b16.png", "c32.tiff"):
        np.testing.assert_allclose(list(faces[name].values()), list(faces["a8.png"].values()), atol=1e-5)
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "d.tiff: float32 pixels from -5 to -5" in error
    # with detection: a 16-bit frame reaches OpenCV's detector as 8-bit (it asserted before)
    gray = cv2.cvtColor(frame_with_face(), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "frame16.png"), gray.astype(np.uint16) * 257)
    result = invoke(
        "predict", "--model", model_file, "--format", "json", "--out", tmp_path / "out", tmp_path / "frame16.png"
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["faces"]) == 1
    assert cv2.imread(str(tmp_path / "out" / "frame16.png.annotated.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_annotated_copies_mirror_the_input_tree_and_never_collide(model_file, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name, value in (("a.jpg", 40), ("a.png", 120), ("sub/a.png", 200)):
        cv2.imwrite(str(folder / name), np.full((60, 80, 3), value, np.uint8))
    out = tmp_path / "out"
    result = invoke("predict", "--model", model_file, "--out", out, folder)
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.jpg.annotated.png", "a.png.annotated.png", "sub/a.png.annotated.png"]
    assert len({cv2.imread(str(out / w))[0, 0, 0] for w in written}) == 3  # three different images
    assert sorted(line for line in result.stderr.splitlines() if line.startswith("wrote")) == sorted(
        f"wrote {out / w}" for w in written
    )
    assert (
        annotated_path(out, tmp_path / "x" / ".." / "in" / "a.png", tmp_path, ".png") == out / "in/a.png.annotated.png"
    )
    assert common_folder([folder / "a.png", folder / "sub" / "a.png"]) == folder


def test_a_failed_annotated_write_is_an_error_line_and_exit_1(model_file, images, tmp_path):
    out = tmp_path / "out"
    (out / "face.png.annotated.png").mkdir(parents=True)  # a folder where the copy goes: refused even to root
    result = invoke("predict", "--model", model_file, "--out", out, images)
    assert result.exit_code == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "face.png: annotated copy not written:" in error and str(out / "face.png.annotated.png") in error
    assert "Is a directory" in error
    assert (out / "blank.png.annotated.png").is_file() and f"wrote {out / 'blank.png.annotated.png'}" in result.stderr
    assert f"wrote {out / 'face.png.annotated.png'}" not in result.stderr
    (tmp_path / "file").write_text("")
    result = invoke("predict", "--model", model_file, "--out", tmp_path / "file" / "out", images)
    assert result.exit_code == 2 and result.stderr.startswith("error: cannot create --out")
    assert len(result.stderr.splitlines()) == 1


def test_a_read_only_out_folder_is_an_error_line_and_exit_1(model_file, images, tmp_path):
    import os

    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as root, a read-only folder still takes files (the folder-in-the-way test covers it)")
        result = invoke("predict", "--model", model_file, "--out", out, images)
        assert result.exit_code == 1 and "Permission denied" in result.stderr and "wrote" not in result.stderr
    finally:
        out.chmod(0o755)


@pytest.fixture
def run_with_model(model_file):
    from bench import tracking as trk

    experiment = trk.ensure_experiment("models", trk.connect(None))
    with trk.TrackedRun(experiment) as run:
        staged = model_file.parent / "staged"
        staged.mkdir(exist_ok=True)
        (staged / "model.keras").write_bytes(model_file.read_bytes())
        run.artifact(staged / "model.keras")
    return run.run_id


def test_predict_and_export_from_a_run_leave_no_model_copy_behind(run_with_model, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cv2.imwrite(str(tmp_path / "crop.png"), synthetic_face())
    result = invoke("predict", "--run", run_with_model, "--no-detect", "--format", "json", tmp_path / "crop.png")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["faces"]) == 1
    result = invoke("export", "--run", run_with_model, "--to", "tflite", "--out", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    assert [
        p.name for p in scratch.iterdir() if p.name.startswith("bench-model-")
    ] == []  # (TF's autograph leaves files)


def test_export_to_an_unwritable_place_is_one_line(model_file, tmp_path):
    (tmp_path / "file").write_text("")
    result = invoke("export", "--model", model_file, "--to", "tflite", "--out", tmp_path / "file" / "m.tflite")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: cannot write --out {tmp_path / 'file' / 'm.tflite'}")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(("image_size", "fmt"), [(64, "saved_model"), (48, "tflite")])
def test_a_calibrated_model_exports_with_its_temperature(tmp_path, image_size, fmt):
    """Upscaling models are cloned for export (a plain Functional: FaceModel.call is lost) and get the
    temperature back as a layer; others are exported as they are."""
    from bench.calibration import apply_temperature
    from bench.inference.export import _saved_model_runner, _tflite_runner, sample_faces

    keras.utils.set_random_seed(2)
    model, _ = build_model(backbone="baseline_cnn", head="linear", image_size=image_size)
    x = sample_faces(8)
    raw = model.predict(x, verbose=0)
    model.set_temperature(0.2)  # sharpen: an untrained model's outputs are near-uniform
    out = tmp_path / ("m.tflite" if fmt == "tflite" else "sm")
    report = export_model(model, fmt, out)
    assert report.agrees, report.failure
    exported = (_tflite_runner if fmt == "tflite" else _saved_model_runner)(out)(x)
    np.testing.assert_allclose(exported, apply_temperature(raw, 0.2), atol=1e-4)
    assert np.abs(exported - raw).max() > 1e-2  # the temperature changed what is exported
    keras.backend.clear_session()


def test_predict_tta_follows_the_run_or_the_option(tmp_path):
    from bench import tracking as trk
    from bench.cli.predict_cmd import tta_settings

    experiment = trk.ensure_experiment("tta", trk.connect(None))
    with trk.TrackedRun(experiment) as run:
        run.params({"recipe.eval.tta": "crops", "recipe.data.augment.crop_padding": 4})
    with trk.TrackedRun(experiment) as older:  # logged before recipe.eval existed
        older.params({"backbone": "baseline_cnn"})
    assert tta_settings(None, run.run_id, None) == ("crops", 4)
    assert tta_settings("flip", run.run_id, None) == ("flip", 4)
    assert tta_settings(None, older.run_id, None) == ("none", 0)
    assert tta_settings(None, None, None) == ("none", 0) and tta_settings("flip", None, None) == ("flip", 0)
    with pytest.raises(BenchError, match="--tta crops needs --run"):
        tta_settings("crops", None, None)


def test_predict_with_flip_tta_averages_the_face_and_its_mirror(model_file, tmp_path):
    cv2.imwrite(str(tmp_path / "crop.png"), synthetic_face())
    result = invoke(
        "predict", "--model", model_file, "--no-detect", "--tta", "flip", "--format", "json", tmp_path / "crop.png"
    )
    assert result.exit_code == 0, result.output
    (face,) = json.loads(result.stdout)["faces"]
    x = synthetic_face()[None, ..., None].astype("float32")
    model = keras.models.load_model(model_file)
    expected = (model.predict(x, verbose=0)[0] + model.predict(x[:, :, ::-1], verbose=0)[0]) / 2
    np.testing.assert_allclose([face["probabilities"][c] for c in CLASS_NAMES], expected, atol=1e-5)
    result = invoke("predict", "--model", model_file, "--tta", "crops", tmp_path / "crop.png")
    assert result.exit_code == 2 and "--tta crops needs --run" in result.stderr
