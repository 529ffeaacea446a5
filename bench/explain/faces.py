"""The faces ``bench explain`` explains, found exactly as ``bench predict`` finds them.

One pipeline, not a copy: the inputs go through :func:`bench.inference.predict.predict_files` (the same
reader, Haar detection, margin and crop, or ``--no-detect``), with a classifier that keeps each batch of
48x48 crops it is handed, so every face explained is the very crop ``bench predict`` would classify,
with the box and probabilities it would report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import BenchError


@dataclass(frozen=True)
class FoundFaces:
    """Faces of the inputs, in input order: ``crops`` (n, 48, 48) uint8 and predict's ``records`` (source,
    box, emotion, probabilities) for them; ``notes`` are the per-input lines for stderr."""

    crops: np.ndarray
    records: list
    notes: list[str]


class _KeepingCrops:
    """A :class:`~bench.inference.classifier.FaceClassifier` stand-in that classifies with the real one and
    keeps the crops it was given, in the order predict's records list their faces."""

    def __init__(self, classifier):
        self.classifier, self.class_names = classifier, classifier.class_names
        self.crops: list[np.ndarray] = []

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        self.crops.append(np.asarray(faces, dtype=np.uint8).reshape(len(faces), *np.shape(faces)[1:3]))
        return self.classifier(faces)


def check_inputs(inputs: list[str]) -> list[Path]:
    """The image files ``inputs`` name (folders expanded as predict expands them), or a one-line error for
    a path that does not exist. Videos are left out with no error when inside a folder, refused when named."""
    from bench.inference.predict import VIDEO_SUFFIXES, expand_inputs

    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise BenchError(f"input '{raw}' does not exist; pass image files or folders of images")
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            raise BenchError(f"input '{raw}' is a video; explain takes images (bench predict reads videos)")
    paths = [p for p in expand_inputs(inputs) if p.suffix.lower() not in VIDEO_SUFFIXES]
    if not paths:
        raise BenchError(f"no image files in {', '.join(inputs)}; pass image files or folders of images")
    return paths


def find_faces(
    classifier,
    inputs: list[str],
    *,
    detect: bool = True,
    margin: float = 0.15,
    min_face: int = 30,
    detect_width: int = 320,
) -> FoundFaces:
    """Every face in the image files and folders ``inputs``, found as ``bench predict`` finds them.

    Raises a one-line error for a missing path and when no face is found in any input (naming
    ``--no-detect``); an unreadable input or one without a face is a note, the others still count.
    """
    from bench.inference.predict import PredictOptions, predict_files

    paths = check_inputs(inputs)
    keeping = _KeepingCrops(classifier)
    options = PredictOptions(detect=detect, margin=margin, min_face=min_face, detect_width=detect_width)
    report = predict_files(keeping, [str(p) for p in paths], options)
    crops = np.concatenate(keeping.crops) if keeping.crops else np.zeros((0, 48, 48), np.uint8)
    if not len(crops):
        hint = "try --no-detect for cropped faces, or a smaller --min-face" if detect else "check the inputs"
        raise BenchError(f"no face found in {len(paths)} image(s) of {', '.join(inputs)}; {hint}")
    return FoundFaces(crops, report.faces, _notes(report.inputs))


def _notes(inputs) -> list[str]:
    """One stderr line per input that gave no face: unreadable, or no face found in it."""
    return [
        f"error: {r.source}: {r.error}" if r.error else f"note: {r.source}: no face found"
        for r in inputs
        if r.error or r.faces == 0
    ]
