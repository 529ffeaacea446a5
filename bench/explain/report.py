"""``bench explain`` on a model and its faces: the maps, one PNG per face, the rows the CLI prints and the
figures its page embeds. The command itself (options, printing) is :mod:`bench.cli.explain_cmd`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bench.explain.page import Figure

SECTION_FACES = "faces"
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
