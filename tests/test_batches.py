"""ArrayBatches and make_stream: the backend-neutral input stream has tf.data's semantics.

These tests run under whichever Keras backend the process has (TensorFlow in ``make test``, JAX in
``make test-jax``)."""

import numpy as np
import pytest

from bench.config import AugmentConfig
from bench.data.augment import build_augmenter
from bench.data.batches import ArrayBatches, compiled_augmenter, make_stream, predict_all, steps_per_pass


@pytest.fixture
def arrays(rng):
    return rng.integers(0, 255, (100, 48, 48), dtype=np.uint8), np.repeat(np.arange(7), 15)[:100]


@pytest.mark.parametrize(
    "n, batch, shuffle, expected",
    [(100, 32, True, 3), (100, 32, False, 4), (20, 32, True, 1), (64, 32, True, 2), (64, 32, False, 2)],
)
def test_steps_per_pass_drops_the_partial_batch_only_when_shuffled(n, batch, shuffle, expected):
    assert steps_per_pass(n, batch, shuffle) == expected


def test_batches_have_one_hot_labels_and_per_sample_weights(arrays):
    x, y = arrays
    weights = np.arange(1, 8, dtype=float)
    xb, yb, wb = ArrayBatches(x, y, batch_size=16, weights=weights)[0]
    assert xb.shape == (16, 48, 48, 1) and xb.dtype == np.float32
    assert yb.shape == (16, 7) and np.array_equal(yb.argmax(1), y[:16])
    assert np.allclose(wb, weights[y[:16]])
    assert np.array_equal(xb[..., 0], x[:16])


def test_batches_carry_eight_classes_and_soft_targets_as_make_dataset_does(arrays, rng):
    """FER+: 8 one-hot columns from 8 class weights, or each image's own vote distribution."""
    x, y = arrays
    xb, yb, _ = ArrayBatches(x, y, batch_size=16, weights=np.ones(8))[0]
    assert yb.shape == (16, 8) and np.array_equal(yb.argmax(1), y[:16])
    targets = rng.dirichlet(np.ones(8), len(y)).astype(np.float32)
    xb, yb = ArrayBatches(x, y, batch_size=16, targets=targets)[0]
    assert np.allclose(yb, targets[:16])


def test_training_stream_drops_the_partial_batch_and_evaluation_keeps_every_image(arrays):
    x, y = arrays
    train = ArrayBatches(x, y, batch_size=32, shuffle=True)
    assert [len(train[i][0]) for i in range(len(train))] == [32, 32, 32]
    plain = ArrayBatches(x, y, batch_size=32, inputs_only=True)
    assert [len(plain[i]) for i in range(len(plain))] == [32, 32, 32, 4]
    assert np.array_equal(np.concatenate([plain[i] for i in range(len(plain))])[..., 0], x)
    assert len(ArrayBatches(x[:20], y[:20], batch_size=32, shuffle=True)[0][0]) == 20


def _pass(stream, start=0):
    return np.concatenate([stream[start + i][1].argmax(1) for i in range(stream.per_pass)])


def test_shuffle_is_seeded_and_changes_every_pass(arrays):
    x, y = arrays
    x = np.broadcast_to(np.arange(100, dtype=np.uint8)[:, None, None], (100, 48, 48))  # image i has value i
    stream = ArrayBatches(x, y, batch_size=10, shuffle=True, seed=3)
    first = np.concatenate([stream[i][0][:, 0, 0, 0] for i in range(10)])
    assert sorted(first) == list(range(100)) and list(first) != list(range(100))
    stream.on_epoch_end()
    second = np.concatenate([stream[i][0][:, 0, 0, 0] for i in range(10)])
    assert sorted(second) == list(range(100)) and not np.array_equal(first, second)
    again = ArrayBatches(x, y, batch_size=10, shuffle=True, seed=3)
    assert np.array_equal(np.concatenate([again[i][0][:, 0, 0, 0] for i in range(10)]), first)


def test_a_repeating_stream_never_ends_and_reshuffles_each_pass(arrays):
    x, y = arrays
    stream = ArrayBatches(x, y, batch_size=32, shuffle=True, seed=1, repeat=True)
    assert stream.num_batches is None and stream.per_pass == 3
    finite = ArrayBatches(x, y, batch_size=32, shuffle=True, seed=1)
    assert np.array_equal(_pass(stream), _pass(finite))
    finite.on_epoch_end()
    assert np.array_equal(_pass(stream, start=3), _pass(finite))


def test_oversampling_repeats_minority_samples(rng):
    x = rng.integers(0, 255, (40, 48, 48), dtype=np.uint8)
    y = np.array([0] * 30 + [1] * 10)
    stream = ArrayBatches(x, y, batch_size=10, shuffle=True, oversample=1.0)
    labels = np.concatenate([stream[i][1].argmax(1) for i in range(len(stream))])
    assert np.bincount(labels).tolist() == [30, 30]


def test_augmentation_is_applied_per_batch_and_deterministic_for_a_seed(arrays):
    x, y = arrays

    def first_batch(seed):
        aug = build_augmenter(AugmentConfig(occlusion=0.5, contrast=0.2), seed)
        return ArrayBatches(x, y, batch_size=32, augmenter=aug, shuffle=True, seed=seed)[0][0]

    a, b, c = first_batch(1), first_batch(1), first_batch(2)
    assert a.shape == (32, 48, 48, 1) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255


@pytest.mark.parametrize("resample", ["per_layer", "once"])
def test_the_compiled_augmenter_draws_what_the_layers_draw_eagerly(arrays, resample):
    import keras

    x = arrays[0][:16, ..., None].astype(np.float32)
    cfg = AugmentConfig(
        rotation_degrees=20.0, shift=0.1, horizontal_flip=True, occlusion=0.5, brightness=(0.8, 1.2), resample=resample
    )
    eager, compiled = build_augmenter(cfg, 5), compiled_augmenter(build_augmenter(cfg, 5), compile=True)
    for _ in range(3):  # the first call builds the layers; later ones must keep the same random stream
        expected = keras.ops.convert_to_numpy(eager(x, training=True))
        # jit and eager round the affine's sample coordinates differently (<= 0.002 gray levels seen on
        # JAX); another draw would differ by tens
        assert np.allclose(compiled(x), expected, atol=1e-2)


def test_batch_size_must_be_positive(arrays):
    with pytest.raises(ValueError, match="batch_size=0"):
        ArrayBatches(*arrays, batch_size=0)


def test_make_stream_matches_the_backend_and_its_batch_sizes(arrays):
    import keras

    x, y = arrays
    stream = make_stream(x, y, batch_size=32, shuffle=True)
    eval_stream = make_stream(x, y, batch_size=32, inputs_only=True)
    if keras.backend.backend() == "tensorflow":
        assert [int(b[0].shape[0]) for b in stream] == [32, 32, 32]
        assert [int(b.shape[0]) for b in eval_stream] == [32, 32, 32, 4]
        assert int(make_stream(x, y, batch_size=32, shuffle=True, repeat=True).cardinality()) < 0  # infinite
    else:
        assert isinstance(stream, ArrayBatches) and len(stream) == 3
        assert isinstance(eval_stream, ArrayBatches) and eval_stream.inputs_only
        assert [len(eval_stream[i]) for i in range(len(eval_stream))] == [32, 32, 32, 32]  # one shape: one compile


def test_fit_and_predict_read_array_batches(arrays):
    """Keras' own PyDataset adapter drives the stream: fit with a fixed number of steps on an endless
    stream, predict over every image in order."""
    import keras

    x, y = arrays
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7, "softmax")])
    model.compile("sgd", "categorical_crossentropy")
    stream = ArrayBatches(x, y, batch_size=16, shuffle=True, repeat=True)
    history = model.fit(stream, steps_per_epoch=9, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2
    probs = model.predict(ArrayBatches(x, y, batch_size=32, inputs_only=True), verbose=0)
    assert probs.shape == (100, 7)


def test_a_padded_last_batch_is_black_and_predict_all_keeps_one_row_per_image(arrays):
    """The padding only fills the last batch up to the batch shape; predict_all drops its rows, so the
    outputs are those of an unpadded pass under every backend."""
    import keras

    x, y = arrays
    padded = ArrayBatches(x, y, batch_size=32, inputs_only=True, pad_last=True)
    last = padded[len(padded) - 1]
    assert last.shape == (32, 48, 48, 1) and np.array_equal(last[:4, ..., 0], x[96:]) and not last[4:].any()
    assert len(ArrayBatches(x, y, batch_size=32, pad_last=True)[3][0]) == 4  # training batches: never padded
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7, "softmax")])
    unpadded = model.predict(ArrayBatches(x, y, batch_size=32, inputs_only=True), verbose=0)
    got = predict_all(model, x, batch_size=32)
    assert got.shape == (100, 7) and np.allclose(got, unpadded, atol=1e-6)
