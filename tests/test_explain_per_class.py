"""bench/explain/per_class.py: which faces are averaged per class, and the averages themselves."""

import keras
import numpy as np
import pytest

from bench.explain.maps import face_maps, probabilities
from bench.explain.per_class import class_averages, most_confident_correct
from bench.models import build_model

TINY_HYBRID = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}


def test_the_most_confident_correct_faces_of_each_class_are_picked_in_order():
    probs = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.7, 0.3, 0.0], [0.2, 0.8, 0.0], [0.95, 0.05, 0.0]])
    labels = np.array([0, 0, 1, 1, 0])  # face 2 is wrong (labelled 1, predicted 0)
    picks = most_confident_correct(probs, labels, 2)
    assert picks[0].tolist() == [4, 0] and picks[1].tolist() == [3] and picks[2].tolist() == []
    with pytest.raises(ValueError, match="n must be >= 1"):
        most_confident_correct(probs, labels, 0)


def test_class_averages_are_the_mean_face_and_maps_of_the_picked_faces():
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="hybrid", head_options=TINY_HYBRID)
    images = np.random.default_rng(1).integers(0, 256, (12, 48, 48)).astype(np.uint8)
    labels = probabilities(model, images).argmax(axis=1)  # every face correct
    names = tuple(f"c{i}" for i in range(7))
    columns = class_averages(model, images, labels, names, n=3)
    assert [c["label"].split()[0] for c in columns] == list(names)
    for c, column in enumerate(columns):
        members = np.flatnonzero(labels == c)
        assert column["count"] == min(3, len(members))
        if not len(members):
            assert column["face"] is None and column["Grad-CAM"] is None
            continue
        picked = most_confident_correct(probabilities(model, images), labels, 3)[c]
        np.testing.assert_allclose(column["face"], images[picked].mean(axis=0))
        maps = face_maps(model, images[picked], explain_class=c)
        assert column["Grad-CAM"].shape == (6, 6) and column["Grad-CAM"].max() <= 1.0 + 1e-6
        assert column["attention"].min() == pytest.approx(0.0, abs=1e-7)  # shown from its minimum
        np.testing.assert_allclose(
            column["attention"] + maps.attention.mean(axis=0).min(), maps.attention.mean(axis=0), atol=1e-6
        )
