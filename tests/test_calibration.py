import numpy as np
import pytest

from bench.calibration import apply_temperature, fit_temperature, tta_nll


def calibrated_sample(n: int = 4000, classes: int = 7, seed: int = 0):
    """Labels drawn from their own (calibrated) probabilities, so the true temperature is 1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, classes))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(classes, p=p) for p in probs])
    return y, probs


@pytest.mark.parametrize("true_t", [2.5, 0.6])
def test_fit_recovers_a_known_temperature_of_over_or_under_confident_probabilities(true_t):
    y, calibrated = calibrated_sample()
    distorted = apply_temperature(calibrated, 1 / true_t)  # p ** true_t: sharper when true_t > 1
    fitted = fit_temperature(y, distorted)
    assert fitted == pytest.approx(true_t, rel=0.08)
    assert tta_nll(y, distorted, fitted) < tta_nll(y, distorted, 1.0)


def test_apply_temperature_keeps_the_class_and_one_is_the_identity():
    _, probs = calibrated_sample(50)
    assert np.allclose(apply_temperature(probs, 1.0), probs, atol=1e-9)
    soft = apply_temperature(probs, 3.0)
    assert np.allclose(soft.sum(1), 1) and (soft.argmax(1) == probs.argmax(1)).all()
    assert soft.max(1).mean() < probs.max(1).mean()
    with pytest.raises(ValueError, match="temperature must be > 0"):
        apply_temperature(probs, 0.0)


def test_views_are_tempered_one_by_one_then_averaged():
    y, probs = calibrated_sample(200)
    views = np.stack([probs, probs[:, ::-1]])
    expected = apply_temperature(views, 2.0).mean(0)
    nll = -np.mean(np.log(expected[np.arange(len(y)), y]))
    assert tta_nll(y, views, 2.0) == pytest.approx(nll)
    assert tta_nll(y, probs, 2.0) == pytest.approx(tta_nll(y, probs[None], 2.0))
    assert 0.05 <= fit_temperature(y, views) <= 20


def test_an_empty_split_fits_the_identity():
    assert fit_temperature(np.zeros(0, np.int64), np.zeros((0, 7))) == 1.0
