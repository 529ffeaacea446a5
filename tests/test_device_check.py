"""benchmarks/fer_carry.py and benchmarks/device_check.py: the packed data comes back bit for bit, and
the check's data keeps PrivateTest as test and carves validation out of Training only."""

import sys

import numpy as np
import pytest

from tests.conftest import BENCHMARKS, load_benchmark


@pytest.fixture
def packed(tmp_path, rng):
    images = rng.integers(0, 256, (50, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 50)
    splits = np.array(["train"] * 30 + ["val"] * 10 + ["test"] * 10)
    return images, labels, splits, load_benchmark("fer_carry").pack(images, labels, splits, tmp_path / "fer.u8.xz")


def test_pack_round_trips_train_and_test_rows_and_leaves_out_the_rest(packed):
    images, labels, splits, path = packed
    got_images, got_labels, got_splits = load_benchmark("fer_carry").unpack(path)
    keep = splits != "val"
    assert np.array_equal(got_images, images[keep]) and got_images.dtype == np.uint8
    assert np.array_equal(got_labels, labels[keep])
    assert got_splits.tolist() == splits[keep].tolist()


def test_device_check_data_validates_on_training_rows_only(packed):
    *_, path = packed
    data = load_benchmark("device_check").load(path, 0)
    sizes = data.split_sizes()
    assert sizes["test"] == 10 and sizes["train"] + sizes["val"] == 30 and sizes["val"] >= 1


@pytest.mark.parametrize(
    "walls, expected", [([40.0, 1.0, 1.5, 1.0], 39.0), ([5.0, 2.0], 3.0), ([12.0], None), ([], None)]
)
def test_compile_seconds_is_the_first_epoch_less_a_steady_one(walls, expected):
    assert load_benchmark("device_check").compile_seconds(walls) == expected


@pytest.mark.parametrize(
    "y_true, y_pred",
    [([0, 1, 2, 2, 3], [0, 2, 2, 2, 1]), ([0, 0, 0], [1, 1, 1]), ([4, 4, 5], [4, 4, 5]), ([0, 1, 6, 6], [6, 6, 6, 6])],
)
def test_macro_f1_is_scikit_learns_over_every_label(y_true, y_pred):
    from sklearn.metrics import f1_score

    from bench.metrics import macro_f1

    expected = f1_score(y_true, y_pred, labels=range(7), average="macro", zero_division=0)
    assert macro_f1(y_true, y_pred, 7) == pytest.approx(expected)


def test_the_training_path_imports_without_tracking_metrics_or_image_libraries():
    """What benchmarks/device_check.py uses must import where only NumPy, Keras and a backend exist."""
    import subprocess

    blocked = ["mlflow", "sklearn", "pandas", "optuna", "click", "matplotlib", "cv2", "PIL"]
    code = f"""
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Blocker())
sys.path[:0] = [{str(BENCHMARKS)!r}]
import device_check, bench.train, bench.callbacks, bench.data.batches
from bench.runtime import environment_tags
tags = environment_tags("float32")
assert tags["bench.backend"] and tags["mlflow"], tags
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_wheels_are_fetched_for_the_gpu_machines_python_not_this_one(tmp_path):
    command = load_benchmark("fer_carry").wheel_download_command(tmp_path, "3.12")
    assert command[command.index("--python-version") + 1] == "3.12" and "--only-binary=:all:" in command
    assert "manylinux_2_28_x86_64" in command and command[command.index("-d") + 1] == str(tmp_path)
