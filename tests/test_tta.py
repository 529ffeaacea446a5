"""Test-time augmentation views, their averaging, and the classifier that uses them."""

import numpy as np
import pytest

from bench.errors import BenchError
from bench.inference.tta import VIEW_COUNTS, shifted, tta_probs, view_probs, views


def faces(n=3, channels=True, seed=0):
    x = np.random.default_rng(seed).integers(0, 256, (n, 48, 48)).astype(np.float32)
    return x[..., None] if channels else x


def mean_pixel_model(x):
    """A stand-in 'model': two 'probabilities' from the left and right halves' brightness, so a mirror
    swaps them and a shift moves them."""
    x = np.asarray(x).reshape(len(x), 48, 48)
    left, right = x[:, :, :24].mean((1, 2)), x[:, :, 24:].mean((1, 2))
    return np.stack([left, right], axis=1) / (left + right)[:, None]


@pytest.mark.parametrize("mode", ["none", "flip", "crops"])
@pytest.mark.parametrize("channels", [True, False])
def test_each_mode_gives_its_views_the_face_itself_first(mode, channels):
    x = faces(channels=channels)
    got = list(views(x, mode, padding=4))
    assert len(got) == VIEW_COUNTS[mode]
    assert all(v.shape == x.shape for v in got)
    np.testing.assert_array_equal(got[0], x)
    if mode != "none":
        np.testing.assert_array_equal(got[1], x[:, :, ::-1])  # the mirror, left-right
    if mode == "crops":
        distinct = {v.tobytes() for v in got}
        assert len(distinct) == 10
        for base, mirror in zip(got[::2], got[1::2], strict=True):
            np.testing.assert_array_equal(mirror, base[:, :, ::-1])


@pytest.mark.parametrize(("dy", "dx"), [(-4, -4), (-4, 4), (4, -4), (4, 4), (0, 0)])
def test_corner_crops_are_what_pad_and_crop_training_draws_at_its_extreme_offsets(dy, dx):
    """The same Keras affine map with the same fill as bench.data.augment.RandomPadCrop, at a fixed shift."""
    from keras import ops

    x = faces(2)
    rows = np.array([[1, 0, dx, 0, 1, dy, 0, 0]] * len(x), np.float32)
    trained = ops.convert_to_numpy(ops.image.affine_transform(x, rows, interpolation="nearest", fill_mode="reflect"))
    np.testing.assert_array_equal(shifted(x, dy, dx, 4), trained)


def test_probabilities_are_the_mean_over_views():
    x = faces(5)
    stacked = view_probs(mean_pixel_model, x, "flip")
    assert stacked.shape == (2, 5, 2)
    np.testing.assert_allclose(stacked[1], stacked[0][:, ::-1], rtol=1e-6)  # the mirror swaps the halves
    np.testing.assert_allclose(tta_probs(mean_pixel_model, x, "flip"), 0.5, rtol=1e-6)
    np.testing.assert_allclose(tta_probs(mean_pixel_model, x, "none"), mean_pixel_model(x))
    crops = view_probs(mean_pixel_model, x, "crops", padding=3)
    assert crops.shape == (10, 5, 2)
    np.testing.assert_allclose(tta_probs(mean_pixel_model, x, "crops", padding=3), crops.mean(0))


def test_crops_without_padding_and_unknown_modes_are_one_line_errors():
    with pytest.raises(BenchError, match="crops needs data.augment.crop_padding > 0"):
        list(views(faces(), "crops", padding=0))
    with pytest.raises(BenchError, match="tta must be one of none, flip, crops"):
        list(views(faces(), "ten"))


@pytest.mark.parametrize("mode", ["none", "flip", "crops"])
def test_the_classifier_averages_the_views_in_one_call(mode):
    import keras

    from bench.inference.classifier import FaceClassifier
    from bench.models import build_model

    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    classifier = FaceClassifier(model, tta=mode, crop_padding=2)
    x = faces(4).astype(np.uint8)
    expected = tta_probs(lambda v: model.predict(v, verbose=0), x.astype(np.float32), mode, padding=2)
    np.testing.assert_allclose(classifier(x), expected, atol=1e-5)
    assert classifier(x[:0]).shape == (0, 7)
    keras.backend.clear_session()
