"""bench/explain/maps.py: per face its prediction and the maps of the class explained."""

import keras
import numpy as np
import pytest

from bench.errors import BenchError
from bench.explain.maps import class_index, face_maps
from bench.models import build_model
from bench.registry import BACKBONES

TINY_HYBRID = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}


@pytest.fixture(scope="module")
def hybrid_model():
    keras.utils.set_random_seed(0)
    return build_model(backbone="baseline_cnn", head="hybrid", head_options=TINY_HYBRID)[0]


def faces(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48)).astype(np.uint8)


def test_maps_explain_the_prediction_by_default_and_any_class_when_asked(hybrid_model):
    maps = face_maps(hybrid_model, faces())
    np.testing.assert_allclose(
        maps.probabilities, np.asarray(hybrid_model(faces()[..., None].astype("float32"))), atol=1e-5
    )
    assert maps.explained.tolist() == maps.predicted.tolist()
    assert maps.grad_cam.shape == (3, 6, 6) and maps.attention.shape == (3, 6, 6)
    asked = face_maps(hybrid_model, faces(), explain_class=5)
    assert asked.explained.tolist() == [5, 5, 5]
    assert not np.allclose(asked.grad_cam, maps.grad_cam)  # another class, other gradients
    np.testing.assert_allclose(asked.attention, maps.attention)  # the gate does not depend on the class


def test_batches_give_the_maps_of_one_call(hybrid_model, monkeypatch):
    whole = face_maps(hybrid_model, faces(5))
    monkeypatch.setattr("bench.explain.maps.BATCH", 2)
    split = face_maps(hybrid_model, faces(5))
    np.testing.assert_allclose(split.grad_cam, whole.grad_cam, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(split.attention, whole.attention, atol=1e-6)


def test_a_head_without_attention_has_no_attention_maps_and_empty_input_is_refused():
    model, _ = build_model(backbone="baseline_cnn", head="mlp")
    assert face_maps(model, faces(2)).attention is None
    with pytest.raises(ValueError, match="empty"):
        face_maps(model, faces(0))


def test_an_unknown_class_is_a_one_line_error_naming_the_classes():
    names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert class_index(names, "fear") == 2
    with pytest.raises(BenchError, match="no class 'fearr'; did you mean 'fear'.*one of angry, disgust"):
        class_index(names, "fearr")
    with pytest.raises(BenchError, match="no class 'contempt'; --class takes one of"):
        class_index(names, "contempt")


KERAS_APPS = ("resnet50", "mobilenet_v3_small", "efficientnet_b3", "xception")


@pytest.mark.parametrize(
    "backbone",
    [pytest.param(b, marks=pytest.mark.slow) if b in KERAS_APPS else b for b in BACKBONES.names()],
)
def test_every_backbone_gives_a_map_on_its_feature_grid(backbone):
    """At 48 px (71 for Xception) every registered backbone ends in a spatial map: 2x2 to 6x6."""
    model, spec = build_model(backbone=backbone, head="linear")
    maps = face_maps(model, faces(2))
    assert maps.grad_cam.shape == (2, *spec.feature_shape[:2]) and min(spec.feature_shape[:2]) >= 2
    assert np.all(np.isfinite(maps.grad_cam)) and maps.attention is None
    keras.backend.clear_session()
