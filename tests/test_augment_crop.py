"""RandomPadCrop: pad-and-crop random crops (data.augment.crop_padding)."""

import keras
import numpy as np
import pytest

from bench.config import AugmentConfig
from bench.data.augment import RandomPadCrop, build_augmenter


def test_every_crop_is_a_window_of_the_reflect_padded_face():
    x = np.arange(4 * 6 * 6, dtype="float32").reshape(4, 6, 6, 1)
    out = keras.ops.convert_to_numpy(RandomPadCrop(2, seed=1)(x, training=True))
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
    offsets = set()
    for i in range(len(x)):
        found = [(a, b) for a in range(5) for b in range(5) if np.array_equal(padded[i, a : a + 6, b : b + 6], out[i])]
        assert found, f"image {i} is not a crop of its padded face"
        offsets.add(found[0])
    assert len(offsets) > 1  # drawn per image


def test_pad_crop_is_the_identity_in_inference_and_at_zero_padding_and_refuses_bad_padding():
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(RandomPadCrop(3)(x, training=False)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(RandomPadCrop(0)(x, training=True)), x)
    with pytest.raises(ValueError, match="padding"):
        RandomPadCrop(-1)
    layer = RandomPadCrop(4, seed=7)
    assert RandomPadCrop.from_config(layer.get_config()).get_config() == layer.get_config()


def test_crop_padding_adds_the_layer_and_zero_leaves_it_out():
    names = lambda cfg: [type(layer).__name__ for layer in build_augmenter(cfg, seed=0).layers]  # noqa: E731
    assert "RandomPadCrop" in names(AugmentConfig(crop_padding=4))
    assert "RandomPadCrop" not in names(AugmentConfig(crop_padding=0))
