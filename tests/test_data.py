import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import CLASS_NAMES
from bench.data import load_data
from bench.data.checks import cross_split_train_duplicates, data_report, duplicate_groups
from bench.data.dataset import FerData, split_fingerprint, stratified_holdout
from bench.data.synthetic import FER2013_PROPORTIONS, synthesize
from bench.errors import BenchError
from tests.conftest import pixels, write_rows

REAL_FER = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def test_csv_kaggle_layout_maps_usage_to_splits(tmp_path):
    rows = [
        f"{i % 7},{pixels(i)},{u}" for i, u in enumerate(["Training"] * 5 + ["PublicTest"] * 2 + ["PrivateTest"] * 3)
    ]
    data = load_data(write_rows(tmp_path / "f.csv", rows))
    assert data.images.shape == (10, 48, 48) and data.images.dtype == np.uint8
    assert data.split_sizes() == {"train": 5, "val": 2, "test": 3}
    assert data.labels.tolist() == [i % 7 for i in range(10)]
    assert data.images[3].max() == 3
    assert "PublicTest -> val" in data.protocol
    assert data.class_names == CLASS_NAMES


def test_csv_gzip_and_icml_header_variant(tmp_path):
    body = "emotion, Usage, pixels\n" + "\n".join(f"{i},Training,{pixels(i)}" for i in range(7)) + "\n"
    path = tmp_path / "icml_face_data.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(body.replace(",Training,", ", Training, "))
    data = load_data(path)
    assert len(data) == 7 and set(data.splits) == {"train"}
    assert data.images[6].min() == 6


def test_csv_without_usage_is_training_with_a_stratified_validation_holdout(tmp_path):
    rows = [f"{i % 7},{pixels(i % 256)}" for i in range(70)]
    data = load_data(write_rows(tmp_path / "f.csv", rows, header="emotion,pixels"), seed=3)
    sizes = data.split_sizes()
    assert sizes["test"] == 0 and sizes["val"] == 7 and sizes["train"] == 63
    assert sorted(data.labels[data.splits == "val"].tolist()) == list(range(7))
    again = load_data(write_rows(tmp_path / "g.csv", rows, header="emotion,pixels"), seed=3)
    assert np.array_equal(again.splits, data.splits)


@pytest.mark.parametrize(
    "row, message",
    [
        (f"0,{pixels(1, 2303)},Training", "expected 2304 pixel values, got 2303"),
        (f"0,{pixels(1, 2303)} x,Training", "pixel value 'x' is not an integer"),
        (f"0,{pixels(1, 2303)} 256,Training", "pixel value 256 is outside 0-255"),
        (f"9,{pixels(1)},Training", "unknown label '9'"),
        (f"0,{pixels(1)},Elsewhere", "unknown Usage 'Elsewhere'"),
    ],
)
def test_malformed_rows_fail_with_line_and_problem_or_are_skipped(tmp_path, row, message):
    good = f"3,{pixels(5)},Training"
    path = write_rows(tmp_path / "bad.csv", [good, row, good])
    with pytest.raises(BenchError) as err:
        load_data(path, cache=False)
    assert "line 3" in str(err.value) and message in str(err.value) and "--skip-bad" in str(err.value)
    data = load_data(path, skip_bad=True, cache=False)
    assert len(data) == 2 and sum(data.dropped.values()) == 1


def test_missing_path_and_missing_columns_are_one_line_errors(tmp_path):
    with pytest.raises(BenchError, match="does not exist.*Kaggle"):
        load_data(tmp_path / "nope.csv")
    bad = tmp_path / "cols.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(BenchError, match="missing column"):
        load_data(bad)


def test_csv_cache_is_written_and_reused(synthetic_csv):
    first = load_data(synthetic_csv)
    cached = list(Path(os.environ["BENCH_CACHE_DIR"]).glob("csv-*.npz"))
    assert len(cached) == 1
    second = load_data(synthetic_csv)
    assert second.fingerprint() == first.fingerprint()


def _save(path: Path, array: np.ndarray, mode: str = "L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=None).convert(mode).save(path)


def test_folder_layout_converts_colour_and_odd_sizes_and_matches_class_names(tmp_path, rng):
    root = tmp_path / "fer"
    for i, cls in enumerate(CLASS_NAMES):
        folder = cls.upper() if i % 2 else cls
        for j in range(10):
            _save(root / "train" / folder / f"{j}.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
        _save(root / "test" / cls / "a.jpg", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    _save(root / "train" / "happy" / "colour.png", rng.integers(0, 255, (60, 50, 3), dtype=np.uint8), "RGB")
    data = load_data(root, seed=0)
    assert data.images.shape[1:] == (48, 48)
    assert data.n_converted == 1
    assert data.split_sizes() == {"train": 64, "val": 7, "test": 7}
    assert np.bincount(data.labels, minlength=7)[3] == 12
    assert "10% of train/ -> val" in data.protocol


def test_folder_layout_with_val_dir_and_bad_images(tmp_path, rng):
    root = tmp_path / "fer"
    for split in ("train", "val", "test"):
        _save(root / split / "sad" / "x.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    (root / "train" / "sad" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(BenchError, match="broken.jpg: not a readable image"):
        load_data(root)
    data = load_data(root, skip_bad=True)
    assert data.split_sizes() == {"train": 1, "val": 1, "test": 1}
    assert data.dropped == {"unreadable image": 1}
    (root / "test" / "contempt").mkdir()
    with pytest.raises(BenchError, match="class folder 'contempt' is not among train/'s classes"):
        load_data(root)
    assert load_data(root, skip_bad=True).dropped == {"unreadable image": 1, "unknown class folder": 1}


@pytest.mark.parametrize(
    ("folders", "expected"),
    [
        (["sad", "happy"], CLASS_NAMES),
        (["sad", "contempt"], (*CLASS_NAMES, "contempt")),
        (["cat", "dog", "bird"], ("bird", "cat", "dog")),
    ],
)
def test_folder_classes_come_from_the_train_folders(tmp_path, rng, folders, expected):
    root = tmp_path / "fer"
    for i, name in enumerate(folders):
        for split in ("train", "test"):
            _save(root / split / name / "x.png", np.full((48, 48), 40 * i, np.uint8))
    data = load_data(root, seed=0)
    assert data.class_names == expected
    assert [data.class_names[i] for i in data.labels[data.splits == "test"]] == sorted(folders)


def test_stratified_holdout_is_seeded_and_per_class():
    labels = np.repeat(np.arange(7), 20)
    a, b = stratified_holdout(labels, 0.1, 5), stratified_holdout(labels, 0.1, 5)
    assert np.array_equal(a, b) and a.sum() == 14
    assert np.bincount(labels[a], minlength=7).tolist() == [2] * 7
    assert not np.array_equal(a, stratified_holdout(labels, 0.1, 6))


def test_synthetic_faces_are_deterministic_and_follow_fer_proportions():
    images, labels, usage = synthesize(3000, seed=4)
    again, labels2, _ = synthesize(3000, seed=4)
    assert np.array_equal(images, again) and np.array_equal(labels, labels2)
    share = np.bincount(labels, minlength=7) / len(labels)
    assert np.allclose(share, FER2013_PROPORTIONS, atol=0.02)
    assert share[1] < 0.03  # disgust is rare
    assert set(usage) == {"Training", "PublicTest", "PrivateTest"}
    assert images.std() > 20  # not blank


def test_synthetic_spec_goes_through_the_csv_loader():
    data = load_data("synthetic:200:3")
    assert len(data) == 200 and data.source == "synthetic:200:3"
    assert "not FER2013" in data.protocol
    with pytest.raises(BenchError, match="synthetic"):
        load_data("synthetic:abc")


def test_duplicate_detection_on_planted_duplicates(rng):
    images = rng.integers(0, 255, (12, 48, 48), dtype=np.uint8)
    images[5] = images[0]  # train/train duplicate, same label
    images[9] = images[1]  # train/test duplicate, conflicting label
    images[10] = 0
    images[11] = 0  # two blank (all-black) images, also duplicates of each other
    labels = np.array([0, 1, 2, 3, 4, 0, 6, 0, 1, 2, 3, 3])
    splits = np.array(["train"] * 8 + ["test"] * 4)
    data = FerData(images, labels, splits, source="planted", protocol="test")
    groups = duplicate_groups(images)
    assert sorted(sorted(g.tolist()) for g in groups) == [[0, 5], [1, 9], [10, 11]]
    report = data_report(data)
    assert report["duplicate_groups"] == 3 and report["duplicate_images"] == 6
    assert report["duplicate_groups_across_splits"] == 1
    assert report["duplicate_groups_conflicting_labels"] == 1
    assert report["blank_images"] == 2 and report["all_black_images"] == 2
    assert cross_split_train_duplicates(data).tolist() == [1]


def test_fingerprint_changes_with_labels_or_splits(rng):
    images = rng.integers(0, 255, (4, 48, 48), dtype=np.uint8)
    base = FerData(images, np.array([0, 1, 2, 3]), np.array(["train"] * 4), "x", "p")
    assert (
        base.fingerprint()
        == FerData(images.copy(), np.array([0, 1, 2, 3]), np.array(["train"] * 4), "y", "q").fingerprint()
    )
    assert (
        base.fingerprint() != FerData(images, np.array([0, 1, 2, 4]), np.array(["train"] * 4), "x", "p").fingerprint()
    )
    assert (
        base.fingerprint()
        != FerData(images, np.array([0, 1, 2, 3]), np.array(["train"] * 3 + ["val"]), "x", "p").fingerprint()
    )


@pytest.mark.skipif(not REAL_FER.exists(), reason="the real FER2013 copy (../shared/data/fer2013) is absent")
def test_real_fer2013_counts_match_its_readme():
    data = load_data(REAL_FER)
    assert data.split_sizes() == {"train": 28709, "val": 3589, "test": 3589}
    table = {  # emotion: (Training, PublicTest, PrivateTest), from shared/data/fer2013/README.md
        0: (3995, 467, 491),
        1: (436, 56, 55),
        2: (4097, 496, 528),
        3: (7215, 895, 879),
        4: (4830, 653, 594),
        5: (3171, 415, 416),
        6: (4965, 607, 626),
    }
    for label, expected in table.items():
        got = tuple(int(np.sum((data.labels == label) & (data.splits == s))) for s in ("train", "val", "test"))
        assert got == expected, CLASS_NAMES[label]
    report = data_report(data)
    assert report["duplicate_groups"] == 1516
    assert report["duplicate_groups_across_splits"] == 557
    assert report["duplicate_groups_conflicting_labels"] == 57
    assert report["all_black_images"] == 12


def test_the_data_modules_import_downward_only():
    """dataset.py is what loaders build on; it imports none of them, so there is no import circle."""
    import ast
    import inspect

    import bench.data.dataset as dataset

    imported = {
        node.module for node in ast.walk(ast.parse(inspect.getsource(dataset))) if isinstance(node, ast.ImportFrom)
    }
    assert not {m for m in imported if m and m.startswith("bench.data")}


def test_split_fingerprint_changes_with_the_scored_images_or_labels_only(rng):
    images = rng.integers(0, 255, (6, 48, 48), dtype=np.uint8)
    splits = np.array(["train"] * 3 + ["test"] * 3)
    targets = np.eye(7, dtype=np.float32)[[0, 1, 2, 3, 4, 5]]

    def test_fp(images=images, labels=(0, 1, 2, 3, 4, 5), splits=splits, targets=targets):
        data = FerData(images, np.array(labels), splits, "x", "p", targets=targets)
        return split_fingerprint(*data.split("test"), data.class_names)

    base = test_fp()
    other_train = images.copy()
    other_train[0] = 0
    keep = np.array([False, True, True, True, True, True])  # a training row dropped (FER+ majority vs soft)
    assert test_fp(images=other_train, labels=(6, 6, 2, 3, 4, 5), targets=np.full((6, 7), 1 / 7, np.float32)) == base
    assert test_fp(images=images[keep], labels=(1, 2, 3, 4, 5), splits=splits[keep], targets=targets[keep]) == base
    assert test_fp(labels=(0, 1, 2, 3, 4, 6)) != base
    other_test = images.copy()
    other_test[4, 0, 0] ^= 1
    assert test_fp(images=other_test) != base
    assert split_fingerprint(*FerData(images, np.arange(6), splits, "x", "p").split("test"), ("a",) * 7) != base
