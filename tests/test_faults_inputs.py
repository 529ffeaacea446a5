"""The fault suite for bad inputs (issue 33, defects 8-15): each case is replayed the way it was found,
and each must end in one ``error:`` line with the fix and exit status 2, or in the right result.

Kept so that the next regression is found here rather than by a user."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench import CLASS_NAMES
from bench.cli import cli
from bench.data import load_data
from bench.errors import BenchError


def _png(path: Path, array: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _folders(root: Path, train: dict[str, int], test: tuple[str, ...] | None = None) -> Path:
    """``root/train/<class>/`` with ``n`` 48x48 faces each (0 makes an empty folder), and the same
    classes (or ``test``) under ``root/test/`` with one face each."""
    rng = np.random.default_rng(0)
    for name, n in train.items():
        (root / "train" / name).mkdir(parents=True, exist_ok=True)
        for j in range(n):
            _png(root / "train" / name / f"{j}.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    for name in train if test is None else test:
        _png(root / "test" / name / "t.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    return root


def _one_error_line(result) -> str:
    """The single ``error:`` line a failed command printed; fails on a traceback or a second line."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


# 8: balanced class weights of data sets whose classes are not FER2013's seven


@pytest.mark.parametrize(
    ("train", "test", "expected"),
    [
        ({**dict.fromkeys(CLASS_NAMES, 2), "contempt": 0}, CLASS_NAMES, (*CLASS_NAMES, "contempt")),  # empty contempt/
        ({"cat": 3, "dog": 2, "sad": 1}, None, ("cat", "dog", "sad")),
        ({f"c{i}": 2 for i in range(9)}, None, tuple(f"c{i}" for i in range(9))),
    ],
)
def test_data_check_weighs_the_data_sets_own_classes(tmp_path, train, test, expected):
    root = _folders(tmp_path / "set", train, test)
    table = invoke("data", "check", "--data", str(root), "--skip-bad")
    assert table.exit_code == 0, table.output
    assert "balanced class weights" in table.output
    result = invoke("data", "check", "--data", str(root), "--skip-bad", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert tuple(report["class_names"]) == expected
    assert len(report["balanced_class_weights"]) == len(expected)
    counts = np.array(report["class_counts"]["train"])
    weights = np.array(report["balanced_class_weights"])
    assert np.allclose(weights[counts > 0] * counts[counts > 0], counts.sum() / (counts > 0).sum(), rtol=1e-3)
    assert (weights[counts == 0] == 0).all()


# 9: one image reader: 16-bit and float images in a folder data set read as predict reads them


def test_folder_images_of_every_pixel_type_read_as_predict_reads_them(tmp_path):
    import cv2

    from bench.images import read_gray

    ramp = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)
    root = tmp_path / "set"
    _png(root / "train" / "sad" / "eight.png", np.round(ramp * 255).astype(np.uint8))
    _png(root / "train" / "sad" / "sixteen.png", np.round(ramp * 65535).astype(np.uint16))
    _png(root / "train" / "sad" / "float.tiff", ramp)
    _png(root / "train" / "sad" / "colour16.png", cv2.merge([np.round(ramp * 65535).astype(np.uint16)] * 3))
    _png(root / "test" / "sad" / "t.png", np.round(ramp * 255).astype(np.uint8))
    data = load_data(root, seed=0)
    expected = np.round(ramp * 255).astype(np.uint8)
    for image in data.images:
        assert np.abs(image.astype(int) - expected).max() <= 1, (image.min(), image.max())
    for file in sorted((root / "train" / "sad").iterdir()):  # predict's reader gives the same pixels
        assert np.abs(read_gray(file).astype(int) - expected).max() <= 1, file.name
    assert data.n_converted == 3


def test_a_pixel_type_with_no_reading_is_one_line_naming_the_file(tmp_path):
    root = _folders(tmp_path / "set", {"sad": 1})
    _png(root / "train" / "sad" / "hdr.tiff", np.full((48, 48), 300.0, np.float32))
    with pytest.raises(BenchError, match=r"hdr.tiff: float32 pixels from 300 to 300 have no 0-255 reading"):
        load_data(root)
    assert load_data(root, skip_bad=True).dropped == {"unreadable image": 1}


def test_predict_and_the_folder_loader_share_one_reader():
    from bench import images
    from bench.data import folders
    from bench.inference import faces, predict

    assert faces.to_uint8 is images.to_uint8 and faces.to_gray is images.to_gray
    assert predict.read_image is images.read_image
    assert folders.read_image is images.read_image and folders.to_gray is images.to_gray


# 10: an unreachable or mistyped store, with and without --experiment


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("experiment", [(), ("--experiment", "x")])
@pytest.mark.parametrize("how", ["option", "environment"])
@pytest.mark.parametrize("uri", ["http://127.0.0.1:{port}", "sqlit:///{tmp}/mlflow.db"])
def test_compare_on_an_unreachable_or_mistyped_store_is_one_line(tmp_path, uri, how, experiment):
    uri = uri.format(port=_free_port(), tmp=tmp_path)
    args = ["compare", *experiment] + (["--tracking-uri", uri] if how == "option" else [])
    line = _one_error_line(invoke(*args, env={"MLFLOW_TRACKING_URI": uri} if how == "environment" else None))
    assert uri in line and "--tracking-uri" in line and "MLFLOW_TRACKING_URI" in line
    if uri.startswith("sqlit:"):
        assert "sqlite:///" in line  # the fix: the scheme it was meant to be
    else:
        assert "start the tracking server" in line


# 11: numbers too large to allocate


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        (["data", "check", "--data", "synthetic:999999999999"], "50-100000"),
        (["data", "synth", "--out", "x.csv", "--n", "999999999999"], "1<=x<=100000"),
        (["compare", "--bootstrap", "100000000"], "10<=x<=10000"),
        (["profile", "--backbone", "baseline_cnn", "--image-size", "100000"], "8<=x<=1024"),
        (["profile", "--backbone", "baseline_cnn", "--batch", "10000000"], "1<=x<=4096"),
    ],
)
def test_numbers_too_large_to_allocate_are_one_line_with_the_range(args, accepted):
    assert accepted in _one_error_line(invoke(*args))


@pytest.mark.slow  # loads TensorFlow
def test_run_refuses_a_synthetic_size_too_large_to_allocate():
    line = _one_error_line(
        invoke("run", "--backbone", "baseline_cnn", "--recipe", "smoke", "--data", "synthetic:999999999999")
    )
    assert "50-100000" in line


def test_the_command_line_caps_are_the_library_caps():
    import dataclasses

    from bench.cli import options
    from bench.config import DataConfig
    from bench.data import synthetic

    assert options.MAX_SYNTHETIC_FACES == synthetic.MAX_N
    image_size = next(f for f in dataclasses.fields(DataConfig) if f.name == "image_size")
    assert image_size.metadata["range"][1] == options.MAX_IMAGE_SIZE
    batch_size = next(f for f in dataclasses.fields(DataConfig) if f.name == "batch_size")
    assert batch_size.metadata["range"][1] == options.MAX_BATCH
    with pytest.raises(ValueError, match="n must be 1-100000"):
        synthetic.synthesize(synthetic.MAX_N + 1)


# 12: a recipe that is not UTF-8, a recipe that is a folder


def test_a_recipe_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "latin1.toml").write_bytes('description = "caf\xe9"\n'.encode("latin-1"))
    line = _one_error_line(invoke("profile", "--backbone", "baseline_cnn", "--recipe", str(tmp_path / "latin1.toml")))
    assert "not UTF-8" in line and "latin1.toml" in line


def test_a_recipe_folder_is_said_to_be_a_folder(tmp_path):
    (tmp_path / "recipes").mkdir()
    line = _one_error_line(invoke("profile", "--backbone", "baseline_cnn", "--recipe", str(tmp_path / "recipes")))
    assert "is a folder" in line and "does not exist" not in line


# 13: a folder data set without test/


def test_a_folder_data_set_without_test_is_refused_at_load_time(tmp_path):
    root = _folders(tmp_path / "set", {"sad": 3, "happy": 3}, test=())
    line = _one_error_line(invoke("data", "check", "--data", str(root)))
    assert f"{root} has no test/ folder" in line and "test/<class>/" in line
    (root / "test" / "sad").mkdir(parents=True)  # a test/ with nothing in it is no test split either
    with pytest.raises(BenchError, match="no images under test/"):
        load_data(root)


def test_compare_does_not_rank_a_row_whose_data_have_no_test_split(monkeypatch, tmp_path):
    """A CSV without Usage (documented: no test split) logs empty test predictions: no "CI 0.00-0.00"."""
    import pandas as pd

    from bench import compare

    empty = (np.zeros(0, np.int64), np.zeros((0, 7), np.float32))
    monkeypatch.setattr(compare, "_load_predictions", lambda run_id, split, folder: empty)
    config = {k: "x" for k in compare.CONFIG_KEYS} | {"backbone": "baseline_cnn", "head": "hybrid", "recipe": "cpu"}
    notes: list[str] = []
    row, pred = compare._aggregate(config, pd.DataFrame({"run_id": ["r1"]}), "test", tmp_path, notes)
    assert pred is None and np.isnan(row["macro_f1_mean"])
    assert any("no test split, so it is not ranked" in n for n in notes)


# 15: click's own usage errors are the same one line


@pytest.fixture
def some_files(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("args", "command", "named"),
    [
        (["predict", "--model", "m.keras", "--stride", "0", "x.jpg"], "bench predict", "--stride"),
        (["predict", "--model", "m.keras", "--window", "-1", "x.jpg"], "bench predict", "--window"),
        (["predict", "--model", "m.keras", "--out", "{tmp}/afile", "x.jpg"], "bench predict", "--out"),
        (["predict", "--model", "{tmp}/adir", "x.jpg"], "bench predict", "--model"),
        (
            ["export", "--model", "m.keras", "--to", "tflite", "--quantize", "int4", "--out", "x"],
            "bench export",
            "--quantize",
        ),
        (["profile", "--backbone", "baseline_cnn", "--batch", "0"], "bench profile", "--batch"),
        (["data", "check", "--bogus"], "bench data check", "--bogus"),
        (["compare", "--format", "xml"], "bench compare", "--format"),
        (["run", "--seed", "one"], "bench run", "--seed"),
        (["nosuchcommand"], "bench", "nosuchcommand"),
    ],
)
def test_click_usage_errors_are_one_error_line(some_files, args, command, named):
    line = _one_error_line(invoke(*(a.format(tmp=some_files) for a in args)))
    assert named in line and line.endswith(f"(see {command} --help)")


def test_usage_errors_are_one_line_from_the_installed_command_too(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.cli", "predict", "--model", "m.keras", "--stride", "0", "x.jpg"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: Invalid value for '--stride': 0 is not in the range x>=1 (see bench predict --help)"
    ]


def test_help_and_no_arguments_still_show_the_help():
    assert invoke("--help").exit_code == 0
    bare = invoke()
    assert "Commands:" in bare.output and "error:" not in bare.output
    group = invoke("data")
    assert "check" in group.output and "error:" not in group.output
