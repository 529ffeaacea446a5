"""bench/explain/views.py: the first layer's kernels and a block's feature maps, read from the backbone."""

import keras
import numpy as np
import pytest

from bench.errors import BenchError
from bench.explain.views import block_names, feature_maps, first_kernels
from bench.models import build_model


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model(backbone="baseline_cnn", head="linear")[0]


def test_first_kernels_are_the_first_convolution_summed_over_the_repeated_channels(model):
    name, kernels = first_kernels(model)
    kernel = np.asarray(model.backbone.get_layer("block1_conv").kernel)  # (3, 3, 3, 32)
    assert name == "block1_conv" and kernels.shape == (32, 3, 3)
    np.testing.assert_allclose(kernels[5], kernel[..., 5].sum(axis=2), rtol=1e-6)
    _, separable = first_kernels(build_model(backbone="mini_xception", head="linear")[0])
    assert separable.shape == (8, 3, 3)


def test_feature_maps_are_the_blocks_most_active_channels_for_the_face(model):
    face = np.random.default_rng(0).integers(0, 256, (48, 48)).astype(np.uint8)
    block, maps = feature_maps(model, face, "block2_relu", limit=5)
    assert block == "block2_relu" and maps.shape == (5, 24, 24)
    means = maps.mean(axis=(1, 2))
    assert np.all(np.diff(means) <= 1e-6)  # most active first
    whole = keras.Model(model.backbone.input, model.backbone.get_layer("block2_relu").output)
    expected = np.asarray(whole(model.adapter(face.reshape(1, 48, 48, 1).astype("float32"))))[0]
    assert means[0] == pytest.approx(expected.mean(axis=(0, 1)).max(), rel=1e-5)
    assert feature_maps(model, face)[0] == "block4_relu"  # default: the backbone's output


def test_a_block_that_does_not_exist_is_a_one_line_error_with_close_names(model):
    assert "block3_conv" in block_names(model) and "input_layer" not in " ".join(block_names(model))
    with pytest.raises(BenchError, match="no block 'block3_cnv'.*did you mean block3_conv"):
        feature_maps(model, np.zeros((48, 48), np.uint8), "block3_cnv")
