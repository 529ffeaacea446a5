"""The evaluation plots: what each figure says (titles, labels, phases, panels), read from the figure
itself as it is saved, not from the PNG's pixels."""

import matplotlib
import numpy as np
import pytest

from bench import CLASS_NAMES, plots

matplotlib.use("Agg")


@pytest.fixture
def saved(monkeypatch):
    """Every figure the code under test saves, in order (the PNG is still written)."""
    from matplotlib.figure import Figure

    figures, original = [], Figure.savefig

    def record(fig, *args, **kwargs):
        figures.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_recall_bars_name_the_model_and_each_class_support(saved, tmp_path):
    metrics = {f"val_recall_{c}": 0.1 * i for i, c in enumerate(CLASS_NAMES) if c != "fear"}
    support = [40, 5, 30, 90, 60, 35, 0]
    path = plots.recall_bars(metrics, tmp_path / "r.png", prefix="val_", support=support, title="resnet50 + hybrid")
    assert path.read_bytes()[:4] == b"\x89PNG"
    ax = saved[0].axes[0]
    assert ax.get_title() == "resnet50 + hybrid: per-class recall (val)"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "angry\n(n=40)" and labels[1] == "disgust\n(n=5)" and len(labels) == 7
    assert texts(ax)[2] == "n/a" and texts(ax)[3] == "0.30"  # fear was not logged: marked, not drawn as 0.00
    assert [round(p.get_height(), 2) for p in ax.patches][:4] == [0.0, 0.1, 0.0, 0.3]
    assert labels[6] == "neutral\n(n=0)" and texts(ax)[6] == "n/a"  # no neutral images: undefined, not 0.60


def test_recall_bars_without_support_or_title_keep_plain_labels(saved, tmp_path):
    plots.recall_bars({}, tmp_path / "r.png")
    ax = saved[0].axes[0]
    assert ax.get_title() == "per-class recall (test)"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASS_NAMES)


def history(n: int, rates=None) -> dict:
    h = {
        "epoch": list(range(n)),
        "loss": list(np.linspace(2, 1, n)),
        "val_loss": list(np.linspace(2.2, 1.3, n)),
        "accuracy": list(np.linspace(0.2, 0.6, n)),
        "val_accuracy": list(np.linspace(0.2, 0.5, n)),
        "val_macro_f1": list(np.linspace(0.1, 0.4, n)),
    }
    if rates is not None:
        h["learning_rate"] = rates
    return h


def test_training_curves_mark_and_name_every_phase_and_plot_the_learning_rate(saved, tmp_path):
    rates = [1e-3, 1e-3, 1e-3, 1e-4, 5e-5, 1e-5]
    plots.training_curves(
        history(6, rates), [0, 3], tmp_path / "c.png", phase_names=["head", "all"], title="xception + mlp"
    )
    fig = saved[0]
    assert fig.get_suptitle() == "xception + mlp"
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "val macro-F1", "learning rate"]
    for ax in fig.axes:
        assert texts(ax) == ["head", "all"]
        assert [t.get_position()[0] for t in ax.texts] == pytest.approx([0.6, 3.6])  # each at its phase's start
        boundaries = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":"]
        assert boundaries == [3.5]  # between epoch 3 (phase head) and epoch 4 (phase all), 1-based
    lr = fig.axes[3]
    assert lr.get_yscale() == "log"
    np.testing.assert_allclose(lr.lines[0].get_ydata(), rates)
    np.testing.assert_allclose(lr.lines[0].get_xdata(), range(1, 7))
    assert [line.get_label() for line in fig.axes[0].lines[:2]] == ["train", "validation"]


def test_training_curves_say_when_the_learning_rate_was_not_recorded(saved, tmp_path):
    """Runs logged before the rate was recorded (and a schedule decaying to 0) still plot."""
    plots.training_curves(history(3), [0], tmp_path / "c.png")
    lr = saved[0].axes[3]
    assert texts(lr) == ["not recorded"] and not lr.lines and lr.get_legend() is None
    plots.training_curves(history(2, [1e-3, 0.0]), [0], tmp_path / "c.png")
    lr = saved[1].axes[3]
    assert lr.get_yscale() == "symlog" and lr.get_ylim()[0] == 0  # a cosine that ends at 0 still shows it
    plots.training_curves(history(2, [0.0, 0.0]), [0], tmp_path / "c.png")
    assert saved[2].axes[3].get_yscale() == "linear"


def test_confusion_matrix_and_reliability_plots(saved, tmp_path):
    cm = np.diag([3, 0, 1, 4, 2, 2, 5])
    cm[0, 1] = 1
    plots.confusion_matrix_plot(cm, tmp_path / "cm.png", title="t")
    ax = saved[0].axes[0]
    assert ax.get_title() == "t" and "0.75\n(3)" in texts(ax) and "0.00\n(0)" in texts(ax)
    y = np.array([0, 1, 2, 3])
    prob = np.eye(7)[[0, 1, 2, 0]] * 0.9 + 0.1 / 7
    plots.reliability_diagram(y, prob, tmp_path / "rel.png")
    assert saved[1].axes[0].get_title().startswith("reliability (ECE ")
