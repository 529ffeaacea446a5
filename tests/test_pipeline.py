import numpy as np
import pytest

from bench.config import AugmentConfig
from bench.data.augment import RandomBrightnessScale, build_augmenter
from bench.data.pipeline import make_dataset, oversample_indices
from bench.data.weights import balanced_weights, class_weights, sample_weights


@pytest.fixture
def arrays(rng):
    return rng.integers(0, 255, (100, 48, 48), dtype=np.uint8), np.repeat(np.arange(7), 15)[:100]


def test_batches_have_one_hot_labels_and_per_sample_weights(arrays):
    x, y = arrays
    weights = np.arange(1, 8, dtype=float)
    xb, yb, wb = next(iter(make_dataset(x, y, batch_size=16, weights=weights)))
    assert xb.shape == (16, 48, 48, 1) and xb.dtype.name == "float32"
    assert yb.shape == (16, 7) and np.array_equal(yb.numpy().argmax(1), y[:16])
    assert np.allclose(wb.numpy(), weights[y[:16]])


def test_augmented_pipeline_is_deterministic_for_a_seed_and_keeps_shape(arrays):
    x, y = arrays

    def first_batch(seed):
        aug = build_augmenter(AugmentConfig(occlusion=0.5, contrast=0.2), seed)
        return next(iter(make_dataset(x, y, batch_size=32, augmenter=aug, shuffle=True, seed=seed)))[0].numpy()

    a, b, c = first_batch(1), first_batch(1), first_batch(2)
    assert a.shape == (32, 48, 48, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255


@pytest.mark.parametrize(
    "field, value",
    [
        ("rotation_degrees", 20.0),
        ("shift", 0.2),
        ("zoom", 0.3),
        ("shear_degrees", 10.0),
        ("occlusion", 1.0),
        ("contrast", 0.5),
    ],
)
def test_each_augmentation_changes_images(arrays, field, value):
    x, _ = arrays
    off = dict(
        rotation_degrees=0.0,
        shift=0.0,
        zoom=0.0,
        shear_degrees=0.0,
        horizontal_flip=False,
        brightness=(1.0, 1.0),
        contrast=0.0,
        occlusion=0.0,
    )
    aug = build_augmenter(AugmentConfig(**{**off, field: value}), seed=0)
    out = aug(x[:8, ..., None].astype("float32"), training=True)
    assert tuple(out.shape) == (8, 48, 48, 1)
    assert not np.allclose(np.asarray(out), x[:8, ..., None])
    assert build_augmenter(AugmentConfig(**off), seed=0) is None
    assert build_augmenter(AugmentConfig(enabled=False), seed=0) is None


def test_brightness_scale_is_multiplicative_and_clipped():
    layer = RandomBrightnessScale(2.0, 2.0, seed=0)
    out = np.asarray(layer(np.full((2, 4, 4, 1), 100.0, dtype="float32")))
    assert np.allclose(out, 200.0)
    out = np.asarray(layer(np.full((1, 4, 4, 1), 200.0, dtype="float32")))
    assert np.allclose(out, 255.0)
    with pytest.raises(ValueError):
        RandomBrightnessScale(1.5, 0.5)


def test_oversampling_raises_minority_classes():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 20)
    idx = oversample_indices(labels, 0.8, seed=0)
    counts = np.bincount(labels[idx])
    assert counts.tolist() == [50, 40, 40]
    assert np.array_equal(oversample_indices(labels, 0.0, 0), np.arange(75))


def test_class_weight_schemes_and_boosts():
    labels = np.array([0] * 60 + [1] * 10 + [2] * 30)
    bal = balanced_weights(labels)
    assert np.allclose(bal[:3], [100 / (3 * 60), 100 / (3 * 10), 100 / (3 * 30)])
    assert bal[3:].tolist() == [0.0] * 4  # absent classes get no weight
    assert np.allclose(class_weights(labels, "none"), 1.0)
    assert np.allclose(class_weights(labels, "power", power=0.5)[:3], np.sqrt(bal[:3]))
    assert np.allclose(class_weights(labels, "power", power=0.0)[:3], 1.0)
    boosted = class_weights(labels, "balanced", boost={"disgust": 3.0})
    assert np.isclose(boosted[1], 3 * bal[1]) and np.isclose(boosted[0], bal[0])
    assert sample_weights(np.array([1, 0]), boosted).tolist() == pytest.approx([boosted[1], boosted[0]])
    with pytest.raises(ValueError):
        class_weights(labels, "inverse")


def test_training_streams_have_only_full_batches_and_evaluation_keeps_every_image():
    """A partial training batch crashes TensorFlow + oneDNN on depthwise convolutions
    (benchmarks/investigations/onednn_partial_batch.py), so shuffled streams drop it; evaluation must see every
    image."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (70, 48, 48)).astype("uint8"), rng.integers(0, 7, 70)
    train = [int(xb.shape[0]) for xb, _ in make_dataset(x, y, batch_size=32, shuffle=True)]
    assert train == [32, 32]
    assert [int(xb.shape[0]) for xb, _ in make_dataset(x, y, batch_size=32)] == [32, 32, 6]
    assert [int(xb.shape[0]) for xb, _ in make_dataset(x[:20], y[:20], batch_size=32, shuffle=True)] == [20]
