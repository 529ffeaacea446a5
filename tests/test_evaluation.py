"""recipe.eval's views and calibration, on stand-in predictions (the runner's tests use a real model)."""

import numpy as np
import pytest

from bench.calibration import apply_temperature, fit_temperature
from bench.config import Recipe
from bench.evaluation import calibrate_views, evaluation_views
from bench.recipe_load import from_dict


class _Model:
    temperature = 1.0

    def set_temperature(self, value):
        self.temperature = value


def _recipe(tta="none", calibrate=False, padding=2):
    return from_dict(
        Recipe, {"eval": {"tta": tta, "calibrate": calibrate}, "data": {"augment": {"crop_padding": padding}}}
    )


@pytest.mark.parametrize(("tta", "count"), [("none", 1), ("flip", 2), ("crops", 10)])
def test_views_follow_the_recipe(tta, count):
    x = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.float32)
    seen = []

    def predict(v):
        seen.append(v)
        return np.tile([0.5, 0.5], (len(v), 1))

    assert evaluation_views(_recipe(tta), x, predict).shape == (count, 5, 2)
    np.testing.assert_array_equal(seen[0], x)  # the plain view first


def test_calibration_fits_on_val_only_and_tempers_every_split():
    rng = np.random.default_rng(1)
    y = {"val": rng.integers(0, 3, 300), "test": rng.integers(0, 3, 300)}
    sharp = {s: apply_temperature(np.eye(3)[v] * 0.6 + 0.4 / 3, 0.3)[None] for s, v in y.items()}  # over-confident
    model = _Model()
    tempered, metrics = calibrate_views(model, _recipe(calibrate=True), sharp, y, 3)
    assert metrics["temperature"] == pytest.approx(fit_temperature(y["val"], sharp["val"])) == model.temperature
    assert set(metrics) == {"temperature"} | {f"{s}_{k}_uncalibrated" for s in y for k in ("log_loss", "ece")}
    for split in y:
        np.testing.assert_allclose(tempered[split], apply_temperature(sharp[split], model.temperature))
    shuffled = {"val": sharp["val"], "test": sharp["test"][:, ::-1]}  # test changes, T does not
    assert calibrate_views(_Model(), _recipe(calibrate=True), shuffled, y, 3)[1]["temperature"] == model.temperature


def test_without_calibration_the_views_pass_through():
    views = {"val": np.full((1, 2, 3), 1 / 3), "test": np.full((1, 2, 3), 1 / 3)}
    model = _Model()
    assert calibrate_views(model, _recipe(), views, {"val": [0, 1], "test": [0, 1]}, 3) == (views, {})
    assert model.temperature == 1.0
