"""bench/explain/regions.py: the expression regions of synthetic faces, and the map mass inside them."""

import numpy as np

from bench import CLASS_NAMES
from bench.data.synthetic import EXPRESSIONS, draw_face
from bench.explain.regions import expression_faces, mass_fraction


def test_regions_hold_the_eyes_brows_nose_and_mouth_and_not_the_corners():
    faces, labels, masks = expression_faces(21, seed=0)
    assert faces.shape == masks.shape == (21, 48, 48) and faces.dtype == np.uint8 and masks.dtype == bool
    assert labels.tolist() == [i % 7 for i in range(21)]
    # the face is drawn about (24, 25), +-1.8 px; eyes 4 px above, brows 8-12 above, nose 1-3 below, mouth 9 below
    for y, x in [(21, 18), (21, 30), (16, 20), (34, 24)]:  # eyes, a brow, the mouth
        assert masks[:, y, x].mean() > 0.8, (y, x)
    assert not masks[:, :6, :6].any() and not masks[:, -6:, -6:].any()  # background corners
    assert masks[:, 26, 6].mean() <= 0.05  # the side of the face, level with the nose: no expression
    assert 0.15 < masks.mean() < 0.4


def test_each_face_is_its_class_mean_expression_in_its_own_pose():
    faces, labels, _ = expression_faces(3, seed=5)
    for i in range(3):
        mean = np.array(EXPRESSIONS[CLASS_NAMES[labels[i]]])
        expected = np.round(draw_face(mean, np.random.default_rng((5, i))) * 255).astype(np.uint8)
        assert np.array_equal(faces[i], expected)


def test_mass_fraction_is_the_share_of_the_map_inside_the_mask():
    masks = np.zeros((3, 48, 48), bool)
    masks[:, :24] = True  # the top half
    maps = np.zeros((3, 6, 6), np.float32)
    maps[0, :2] = 1.0  # well inside the top half
    maps[1] = 1.0  # everywhere
    fractions = mass_fraction(maps, masks)
    assert fractions[0] > 0.99 and abs(fractions[1] - 0.5) < 1e-6 and np.isnan(fractions[2])
