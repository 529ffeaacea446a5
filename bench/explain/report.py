"""``bench explain`` on a model and its faces: the maps, one PNG per face, the rows the CLI prints and the
figures its page embeds. The command itself (options, printing) is :mod:`bench.cli.explain_cmd`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bench.explain.page import Figure

SECTION_FACES = "faces"
SECTION_CLASSES = "per class"
SECTION_INSIDE = "inside the backbone"
SCORE_NOTE = (
    "Grad-CAM: gradients of the class's pre-softmax logit with respect to the backbone's feature map, "
    "averaged per channel, weighting the map's channels (relu of the sum); red = most. Attention: the hybrid "
    "head's own spatial gate (the sigmoid in its channel-spatial attention), shown from its minimum to its "
    "maximum, its range in the caption. Maps live on the backbone's feature grid and are upsampled bilinearly."
)


def attention_caption(att: np.ndarray) -> str:
    return f"attention {float(att.min()):.2f}-{float(att.max()):.2f}"


def _file_name(index: int, source: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source).stem)[:60]
    return f"{index + 1:03d}-{stem}.png"


def explain_faces(model, found, out: Path, explain_class: int | None = None) -> tuple[list[dict], list[Figure]]:
    """Maps of every face in ``found`` (:class:`~bench.explain.faces.FoundFaces`), one PNG each in ``out``.

    Returns ``(rows, figures)``: per face its source, box, predicted class and probability, the class
    explained and its probability, and the PNG written; and the page's figures for them."""
    from bench.explain.maps import face_maps
    from bench.explain.render import face_panel
    from bench.inference.classifier import model_class_names

    names = model_class_names(model)
    maps = face_maps(model, found.crops, explain_class)
    rows, figures = [], []
    for i, record in enumerate(found.records):
        predicted, explained = int(maps.predicted[i]), int(maps.explained[i])
        probs = maps.probabilities[i]
        panels = [(f"Grad-CAM: {names[explained]}", maps.grad_cam[i])]
        if maps.attention is not None:
            att = maps.attention[i]
            panels.append((attention_caption(att), att - att.min()))
        title = f"{names[predicted]} {probs[predicted]:.0%}"
        path = face_panel(out / _file_name(i, record.source), found.crops[i], panels, title)
        row = {
            "source": record.source,
            "box": record.box,
            "predicted": names[predicted],
            "probability": float(probs[predicted]),
            "explained": names[explained],
            "explained_probability": float(probs[explained]),
            "png": str(path),
        }
        rows.append(row)
        caption = (
            f"{Path(record.source).name} box {record.box}: {row['predicted']} {row['probability']:.0%}; "
            f"map for {row['explained']} ({row['explained_probability']:.0%})"
        )
        figures.append(Figure(SECTION_FACES, path, caption))
    return rows, figures


def per_class_figure(model, out: Path, *, data_spec: str, labels: str | None, split: str, per_class: int) -> Figure:
    """The grid of per-class average maps over ``split`` of the data set ``data_spec``, as ``per-class.png``
    in ``out``; a one-line error when the data's classes are not the model's."""
    from bench.data import load_data
    from bench.errors import BenchError
    from bench.explain.per_class import class_averages
    from bench.explain.render import class_grid
    from bench.inference.classifier import model_class_names

    names = model_class_names(model)
    data = load_data(data_spec, labels=labels or "fer2013")
    if tuple(data.class_names) != tuple(names):
        raise BenchError(
            f"the data's classes ({', '.join(data.class_names)}) are not the model's ({', '.join(names)}); "
            "give the data set and --labels the model was trained with"
        )
    images, truth = data.split(split)
    if not len(images):
        raise BenchError(f"the {split} split of {data.source} is empty; choose another --split")
    columns = class_averages(model, images, truth, names, per_class)
    maps = ["Grad-CAM"] + (["attention"] if any(c["attention"] is not None for c in columns) else [])
    title = f"{model.name}, {split} split: mean of up to {per_class} most confident correct faces per class"
    path = class_grid(out / "per-class.png", columns, maps, title)
    counts = ", ".join(c["label"] for c in columns)
    caption = f"mean face and mean maps of each class's most confident correct {split} faces: {counts}"
    return Figure(SECTION_CLASSES, path, caption)


def kernels_figure(model, out: Path) -> Figure:
    """The backbone's first-layer kernels as ``kernels.png`` in ``out`` (each on its own gray scale)."""
    from bench.explain.render import image_grid
    from bench.explain.views import first_kernels

    layer, kernels = first_kernels(model)
    title = f"{model.name}: {layer}, {len(kernels)} kernels of {kernels.shape[1]}x{kernels.shape[2]}"
    path = image_grid(out / "kernels.png", kernels, [str(i) for i in range(len(kernels))], title)
    caption = f"first-layer kernels ({layer}), summed over the face's three repeated channels; dark to light"
    return Figure(SECTION_INSIDE, path, caption)


def feature_maps_figure(model, face: np.ndarray, source: str, out: Path, block: str | None) -> Figure:
    """The most active feature maps of backbone layer ``block`` for one face, as ``feature-maps.png``."""
    from bench.explain.render import image_grid
    from bench.explain.views import feature_maps

    block, maps = feature_maps(model, face, block)
    labels = ["face"] + [str(i) for i in range(len(maps))]
    images = [np.asarray(face, np.float32)] + list(maps)
    title = f"{model.name}: {block} ({maps.shape[1]}x{maps.shape[2]}) for {Path(source).name}"
    path = image_grid(out / "feature-maps.png", images, labels, title, cmap=["gray"] + ["viridis"] * len(maps))
    caption = f"the {len(maps)} most active channels of {block} for {Path(source).name} (mean activation order)"
    return Figure(SECTION_INSIDE, path, caption)
