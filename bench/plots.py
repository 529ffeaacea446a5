"""Evaluation plots (matplotlib, PNG): confusion matrix, per-class recall, training curves, reliability."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import CLASS_NAMES


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(*args, **kwargs)


def confusion_matrix_plot(cm: np.ndarray, path: Path, class_names=CLASS_NAMES, title: str = "") -> Path:
    """Row-normalized confusion matrix, annotated with the share and the count of every cell."""
    plt, fig, ax = _figure(figsize=(7, 6))
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set(
        xticks=range(len(class_names)),
        yticks=range(len(class_names)),
        xlabel="predicted",
        ylabel="true",
        title=title or "confusion matrix (row-normalized)",
    )
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_yticklabels(class_names)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def recall_bars(
    metrics: dict[str, float],
    path: Path,
    class_names=CLASS_NAMES,
    prefix: str = "test_",
    *,
    support=None,
    title: str = "",
) -> Path:
    """Per-class recall bars against chance.

    Args:
        metrics: holds ``{prefix}recall_{class}``; a missing class is a gap, not a zero.
        support: images of each class in the split (same order as ``class_names``): shown under each name,
            because a recall of 0.3 means little on 55 disgust images and much on 1,700 happy ones.
        title: usually the model (``backbone + head``), so a PNG read on its own says whose it is.
    """
    plt, fig, ax = _figure(figsize=(8, 4.5))
    values = np.array([metrics.get(f"{prefix}recall_{c}", np.nan) for c in class_names], dtype=float)
    labels = list(class_names)
    if support is not None:
        labels = [f"{c}\n(n={int(n)})" for c, n in zip(class_names, support, strict=True)]
        values[np.asarray(support) == 0] = np.nan  # no images of the class: its recall is undefined, not 0
    x = np.arange(len(class_names))
    ax.bar(x, np.nan_to_num(values), color="tab:blue")
    for i, v in enumerate(values):
        ax.text(i, (0 if np.isnan(v) else v) + 0.02, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", fontsize=8)
    ax.axhline(1 / len(class_names), color="gray", linestyle="--", label="chance")
    split = prefix.rstrip("_") or "test"
    heading = f"per-class recall ({split})"
    ax.set(ylim=(0, 1.08), ylabel="recall", title=f"{title}: {heading}" if title else heading)
    ax.set_xticks(x, labels)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


CURVE_PANELS = (
    ("loss", (("loss", "train"), ("val_loss", "validation"))),
    ("accuracy", (("accuracy", "train"), ("val_accuracy", "validation"))),
    ("val macro-F1", (("val_macro_f1", "validation"),)),
    ("learning rate", (("learning_rate", "at the epoch's end"),)),
)


def _mark_phases(ax, phase_starts: list[int], phase_names: list[str], last_epoch: int) -> None:
    """Dotted lines between phases, every other phase shaded, each phase's name at the top of its span."""
    bounds = [s + 0.5 for s in phase_starts] + [last_epoch + 0.5]
    for i, (left, right) in enumerate(zip(bounds, bounds[1:], strict=False)):
        if i:
            ax.axvline(left, color="gray", linestyle=":")
        if i % 2:
            ax.axvspan(left, right, color="0.93", zorder=0)
        if i < len(phase_names):
            ax.text(
                left + 0.1,
                0.98,
                phase_names[i],
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=8,
                color="0.25",
                rotation=90 if right - left < 2 else 0,
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
            )


def _rate_scale(ax, rates: np.ndarray) -> None:
    """Log scale, as warm-ups, cosine floors and plateau cuts span decades; symmetric-log when a schedule
    reaches 0 (a cosine with no floor ends there), so the zero still shows below the smallest rate."""
    positive = rates[rates > 0]
    if len(positive) == np.count_nonzero(~np.isnan(rates)) and len(positive):
        ax.set_yscale("log")
    elif len(positive):
        ax.set_yscale("symlog", linthresh=positive.min())
        ax.set_ylim(bottom=0)


def training_curves(
    history: dict[str, list[float]], phase_starts: list[int], path: Path, *, phase_names=(), title: str = ""
) -> Path:
    """Loss, accuracy, validation macro-F1 and the learning rate per epoch over all phases.

    Args:
        history: key -> one value per epoch; ``epoch`` holds the 0-based epoch numbers (resumed runs may
            skip some), ``learning_rate`` comes from :class:`bench.callbacks.LearningRate`.
        phase_starts: the epoch each phase began at; ``phase_names[i]`` names the phase starting at
            ``phase_starts[i]``. Boundaries are drawn between epochs so a phase switch is visible where a
            fine-tuning phase makes the loss jump.
        title: usually the model (``backbone + head``).
    """
    plt, fig, axes = _figure(1, len(CURVE_PANELS), figsize=(18, 4.2))
    n = len(history.get("loss", history.get("val_loss", [])))
    epochs = np.asarray(history.get("epoch", range(n)), dtype=float) + 1
    last = int(epochs[-1]) if len(epochs) else 1
    for ax, (label, series) in zip(axes, CURVE_PANELS, strict=True):
        drawn = [key for key, _ in series if len(epochs) and len(history.get(key, [])) == len(epochs)]
        for key, name in series:
            if key in drawn:
                ax.plot(epochs, history[key], marker="." if len(epochs) < 30 else None, label=name)
        if "learning_rate" in drawn:
            _rate_scale(ax, np.asarray(history["learning_rate"], dtype=float))
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", color="gray")
        _mark_phases(ax, list(phase_starts), list(phase_names), last)
        ax.set(xlabel="epoch", title=label, xlim=(0.5, last + 0.5))
        if drawn:
            ax.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def reliability_diagram(y_true: np.ndarray, y_prob: np.ndarray, path: Path) -> Path:
    from bench.metrics import expected_calibration_error, reliability_curve

    conf, acc, counts = reliability_curve(y_true, y_prob)
    plt, fig, ax = _figure(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfect calibration")
    ok = ~np.isnan(conf)
    ax.plot(conf[ok], acc[ok], marker="o", label="model")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence",
        ylabel="accuracy",
        title=f"reliability (ECE {expected_calibration_error(y_true, y_prob):.3f})",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
