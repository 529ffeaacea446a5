"""Drawing the maps: a heat map over a face, one panel per face, one grid of per-class averages.

Figures are matplotlib (titles and layout) over OpenCV's colour map and resizing; each is written as a
PNG. Maps are normalised per panel for display only (Grad-CAM's scale differs between faces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PANEL = 144  # pixels a 48x48 face is drawn at: large enough to see a 6x6 map's cells, small enough to embed
ALPHA = 0.45  # weight of the heat map over the face


def overlay(face: np.ndarray, heat: np.ndarray | None, size: int = PANEL) -> np.ndarray:
    """RGB uint8 ``(size, size, 3)``: the grayscale ``face`` with ``heat`` (any grid, any scale; scaled to
    its maximum) drawn over it in the jet colour map (red = most), or the face alone when ``heat`` is None."""
    import cv2

    gray = cv2.resize(np.asarray(face, np.uint8).reshape(face.shape[:2]), (size, size), interpolation=cv2.INTER_CUBIC)
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    if heat is None:
        return rgb.astype(np.uint8)
    heat = cv2.resize(np.asarray(heat, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    peak = float(heat.max())
    scaled = np.clip(heat / peak if peak > 0 else heat, 0, 1)
    colour = cv2.applyColorMap(np.round(scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return np.round((1 - ALPHA) * rgb + ALPHA * colour).astype(np.uint8)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _figure(rows: int, cols: int, scale: float = 1.9):
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and no GUI backend to start
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(scale * cols, scale * rows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    return fig, axes


def face_panel(path: Path, face: np.ndarray, panels: list[tuple[str, np.ndarray | None]], title: str) -> Path:
    """One PNG: the face, then each ``(caption, heat map)`` over it, side by side, under ``title``."""
    fig, axes = _figure(1, 1 + len(panels))
    axes[0, 0].imshow(overlay(face, None))
    axes[0, 0].set_title("face", fontsize=9)
    for ax, (caption, heat) in zip(axes[0, 1:], panels, strict=True):
        ax.imshow(overlay(face, heat))
        ax.set_title(caption, fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def class_grid(path: Path, columns: list[dict], rows: list[str], title: str) -> Path:
    """One PNG: a column per class (``columns``: ``label``, ``face`` or None, and one heat map or None per
    entry of ``rows``), its mean face on top and each map over it below; a class without faces stays blank."""
    fig, axes = _figure(1 + len(rows), len(columns), scale=1.5)
    for c, column in enumerate(columns):
        axes[0, c].set_title(column["label"], fontsize=8)
        if column.get("face") is None:
            continue
        axes[0, c].imshow(overlay(column["face"], None))
        for r, name in enumerate(rows):
            heat = column.get(name)
            if heat is not None:
                axes[r + 1, c].imshow(overlay(column["face"], heat))
    for r, name in enumerate(rows):
        axes[r + 1, 0].text(-0.08, 0.5, name, transform=axes[r + 1, 0].transAxes, rotation=90, va="center", ha="right")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def image_grid(
    path: Path,
    images,
    labels: list[str],
    title: str,
    cols: int = 8,
    cmap: str | list[str] = "gray",
    value_range: tuple[float, float] | None = None,
) -> Path:
    """One PNG of small images (``(n, h, w)`` any scale, or ``(n, h, w, 3)`` RGB in 0-1), ``cols`` a row,
    each under its label: kernels, feature maps, augmented views. ``cmap``: one colour map, or one per image;
    ``value_range``: fixed (low, high) for every image (faces: 0-255, so brightness changes show), else each
    image is scaled to its own range."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = _figure(rows, min(cols, max(1, len(images))), scale=1.2)
    cmaps = [cmap] * len(images) if isinstance(cmap, str) else cmap
    for ax, image, label, colours in zip(axes.ravel(), images, labels, cmaps, strict=False):
        low, high = value_range or (None, None)
        ax.imshow(image, cmap=colours, interpolation="nearest", vmin=low, vmax=high)
        ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
