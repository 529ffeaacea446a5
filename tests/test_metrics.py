import numpy as np
import pytest
from sklearn import metrics as skm

from bench import CLASS_NAMES
from bench.metrics import classification_report, confusion, evaluate, expected_calibration_error, macro_f1


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 400)
    logits = rng.normal(size=(400, 7))
    logits[np.arange(400), y] += 1.5
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, prob


def test_evaluate_matches_scikit_learn(predictions):
    y, p = predictions
    m = evaluate(y, p)
    pred = p.argmax(1)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=range(7)))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["top2_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=2))
    recalls = skm.recall_score(y, pred, average=None)
    for i, name in enumerate(CLASS_NAMES):
        assert m[f"recall_{name}"] == pytest.approx(recalls[i])
    assert set(m) >= {f"{k}_{c}" for k in ("recall", "precision", "f1") for c in CLASS_NAMES}


def test_missing_classes_do_not_crash(predictions):
    y, p = predictions
    keep = y != 1  # no disgust at all
    m = evaluate(y[keep], p[keep])
    assert np.isfinite(m["log_loss"]) and m["recall_disgust"] == 0.0
    single = evaluate(np.zeros(5, dtype=int), p[:5])
    assert np.isnan(single["roc_auc"])


def test_expected_calibration_error_by_hand():
    # Two samples at confidence 0.9 (one right), two at 0.6 (both right):
    # bins: |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.2 + 0.2 = 0.4
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y, p) == pytest.approx(0.4)
    perfect = np.eye(2)[[0, 1, 0]]
    assert expected_calibration_error(np.array([0, 1, 0]), perfect) == pytest.approx(0.0)


def test_confusion_and_report_cover_all_classes(predictions):
    y, p = predictions
    cm = confusion(y, p)
    assert cm.shape == (7, 7) and cm.sum() == len(y)
    assert "disgust" in classification_report(y, p)


def test_a_predicted_class_missing_from_y_true_warns_nothing():
    import warnings

    y_true = np.array([0, 0, 1, 1])
    y_prob = np.eye(7)[[0, 3, 1, 1]]  # class 3 is predicted, absent from y_true
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate(y_true, y_prob)["balanced_accuracy"] == pytest.approx(0.75)


def test_calibration_metrics_are_evaluates_log_loss_and_ece(predictions):
    from bench.metrics import calibration_metrics

    y, p = predictions
    full = evaluate(y, p)
    assert calibration_metrics(y, p, 7) == pytest.approx({"log_loss": full["log_loss"], "ece": full["ece"]})


def test_macro_f1_averages_every_label_as_evaluate_does(predictions):
    """One definition for the per-epoch validation curve and the evaluated run: a label absent from both
    arrays counts 0, as scikit-learn's ``labels=range(k), zero_division=0``."""
    y, p = predictions
    keep = y != 1
    pred = p[keep].argmax(1)
    pred[pred == 1] = 0  # disgust neither true nor predicted
    expected = skm.f1_score(y[keep], pred, labels=range(7), average="macro", zero_division=0)
    assert macro_f1(y[keep], pred, 7) == expected
    assert evaluate(y[keep], np.eye(7)[pred])["macro_f1"] == expected
    assert macro_f1([0, 1], [0, 1], 2) == 1.0 and macro_f1([0, 1], [0, 1], 4) == 0.5
