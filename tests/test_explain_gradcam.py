"""bench/explain/gradcam.py and gradients.py: Grad-CAM against its closed form, the gradient against finite
differences, the score it differentiates, and the refusal of maps with nothing spatial to explain.
Backend-neutral (no TensorFlow import): the Makefile runs it under JAX too."""

import keras
import numpy as np
import pytest
from keras import layers

from bench.errors import BenchError
from bench.explain.gradcam import class_scores, feature_grid, grad_cam, normalise, upsample
from bench.explain.gradients import input_gradient
from bench.models import FaceModel, GrayToRGB, build_model
from bench.registry import HEADS

TINY_HYBRID = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}


def feature_maps(shape=(3, 4, 5, 8), seed=0):
    return np.random.default_rng(seed).normal(0, 1, shape).astype("float32")


def test_grad_cam_of_a_linear_head_is_its_class_activation_map():
    """GAP -> Dense: d logit_c / d A_ijk = W_kc / (H W) everywhere, so Grad-CAM is relu(A . W_c) / (H W),
    Zhou et al.'s class activation map: a closed form to check the whole chain against."""
    keras.utils.set_random_seed(1)
    head = HEADS.create("linear", feature_shape=(4, 5, 8), num_classes=7)
    features = feature_maps()
    kernel = np.asarray(keras.ops.convert_to_numpy(head.get_layer("logits").kernel))
    classes = np.array([0, 3, 6])
    expected = np.maximum(np.einsum("nhwc,cn->nhw", features, kernel[:, classes]) / 20.0, 0)
    np.testing.assert_allclose(grad_cam(head, features, classes), expected, rtol=1e-4, atol=1e-6)


def test_input_gradient_matches_finite_differences():
    keras.utils.set_random_seed(2)
    head = HEADS.create("mlp", feature_shape=(4, 5, 8), num_classes=7, units=(16,))  # nonlinear (ReLU), cheap
    scores = class_scores(head)
    features = feature_maps(seed=3)
    gradient = input_gradient(lambda a: scores(a)[:, 2], features)
    assert gradient.shape == features.shape and gradient.dtype == np.float32
    indices = [(0, 1, 2, 3), (2, 3, 4, 7), (1, 0, 0, 0)]
    shifted = []  # every perturbed copy in one batch: one call of the head
    for index in indices:
        for sign in (1, -1):
            copy = features.copy()
            copy[index] += sign * 1e-2
            shifted.append(copy[index[0]])
    score = np.asarray(scores(np.stack(shifted)))[:, 2].reshape(len(indices), 2)
    numeric = (score[:, 0] - score[:, 1]) / 2e-2
    np.testing.assert_allclose([gradient[i] for i in indices], numeric, rtol=0.05, atol=1e-4)


@pytest.mark.parametrize("head_name", HEADS.names())
def test_the_score_is_the_pre_softmax_logit_of_every_head(head_name):
    """softmax(score) is the head's output: the score is the logit, not a probability."""
    head = HEADS.create(
        head_name, feature_shape=(3, 3, 16), num_classes=7, **(TINY_HYBRID if head_name == "hybrid" else {})
    )
    features = feature_maps((2, 3, 3, 16))
    scores = np.asarray(class_scores(head)(features))
    np.testing.assert_allclose(
        np.asarray(keras.ops.softmax(scores, axis=-1)), np.asarray(head(features, training=False)), atol=1e-5
    )
    maps = grad_cam(head, features, [1, 4])
    assert maps.shape == (2, 3, 3) and np.all(maps >= 0) and np.all(np.isfinite(maps))


def test_a_head_without_a_softmax_layer_is_scored_by_log_probabilities():
    inputs = keras.Input((3, 3, 4))
    head = keras.Model(inputs, layers.Dense(5, activation="softmax", name="out")(layers.Flatten()(inputs)))
    features = feature_maps((2, 3, 3, 4))
    np.testing.assert_allclose(
        np.asarray(class_scores(head)(features)), np.log(np.asarray(head(features))), rtol=1e-5, atol=1e-5
    )


def test_the_feature_grid_is_read_and_a_map_without_space_is_a_one_line_error():
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    assert feature_grid(model) == (6, 6)
    one_by_one, _ = build_model(backbone="baseline_cnn", head="linear", image_size=8)  # 8 px, three 2x pools
    with pytest.raises(BenchError, match=r"1x1.*--set data.image_size="):
        feature_grid(one_by_one)
    inputs = keras.Input((48, 48, 3))
    pooled = keras.Model(inputs, layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inputs)), name="backbone")
    vector_in = keras.Input((4,))
    head = keras.Model(vector_in, layers.Dense(7, activation="softmax", name="probabilities")(vector_in), name="head")
    flat = FaceModel(adapter_layers=[GrayToRGB()], backbone=pooled, head=head)
    with pytest.raises(BenchError, match=r"not a spatial \(H, W, C\) map"):
        feature_grid(flat)


def test_normalise_scales_each_map_to_one_and_keeps_zero_maps():
    maps = np.stack([np.full((2, 2), 4.0), np.zeros((2, 2)), np.array([[0, 1], [2, 0.5]])])
    out = normalise(maps)
    assert out.reshape(3, -1).max(axis=1).tolist() == [1.0, 0.0, 1.0]
    np.testing.assert_allclose(out[2], maps[2] / 2)


def test_upsample_keeps_a_constant_map_and_puts_a_corner_cell_in_its_corner():
    maps = np.zeros((2, 6, 6), np.float32)
    maps[0] = 3.0
    maps[1, 0, 0] = 1.0
    up = upsample(maps, 48)
    assert up.shape == (2, 48, 48)
    np.testing.assert_allclose(up[0], 3.0)
    assert up[1, :8, :8].mean() > 5 * up[1, 8:, 8:].mean()
    assert upsample(np.zeros((0, 6, 6)), 48).shape == (0, 48, 48)
