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


def recall_bars(metrics: dict[str, float], path: Path, class_names=CLASS_NAMES, prefix: str = "test_") -> Path:
    plt, fig, ax = _figure(figsize=(7, 4))
    values = [metrics.get(f"{prefix}recall_{c}", np.nan) for c in class_names]
    ax.bar(class_names, values, color="tab:blue")
    ax.axhline(1 / len(class_names), color="gray", linestyle="--", label="chance")
    ax.set(ylim=(0, 1), ylabel="recall", title="per-class recall (test)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def training_curves(history: dict[str, list[float]], phase_starts: list[int], path: Path) -> Path:
    """Loss, accuracy and validation macro-F1 over all phases, with phase boundaries marked."""
    plt, fig, axes = _figure(1, 3, figsize=(14, 4))
    epochs = np.asarray(history.get("epoch", range(len(history.get("loss", []))))) + 1
    for ax, (train_key, val_key, label) in zip(
        axes,
        [
            ("loss", "val_loss", "loss"),
            ("accuracy", "val_accuracy", "accuracy"),
            (None, "val_macro_f1", "val macro-F1"),
        ],
        strict=True,
    ):
        if train_key and train_key in history:
            ax.plot(epochs, history[train_key], label="train")
        if val_key in history:
            ax.plot(epochs, history[val_key], label="validation")
        for start in phase_starts[1:]:
            ax.axvline(start + 0.5, color="gray", linestyle=":")
        ax.set(xlabel="epoch", title=label)
        ax.legend()
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
