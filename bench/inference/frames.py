"""One frame through the face pipeline: detect, crop, classify every face in one call, smooth, draw.

The one per-frame path of ``bench predict`` (images, video files) and ``bench live`` (a camera), so the
two commands cannot drift apart: the same Haar detector and search width, the same crop margin, the same
smoothing and the same compiled model call. Each stage is timed, in milliseconds, per frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench import FACE_SIZE
from bench.images import to_gray, to_uint8
from bench.inference.annotate import draw_face, to_bgr
from bench.inference.classifier import FaceClassifier
from bench.inference.faces import Box, FaceDetector, crop_face, whole_image_face
from bench.inference.smoothing import LabelSmoother

FRAME_STAGES = ("detect", "preprocess", "predict", "draw")  # what FramePipeline times; callers add read/decode


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found and cropped (``bench predict``'s and ``bench live``'s shared options).

    Args:
        detect: False = the whole frame is one already-cropped face (``--no-detect``).
        margin: crop margin, a fraction of the box on every side.
        min_face: smallest face side, pixels of the original frame.
        detect_width: frames wider than this are searched at this width (see ``FaceDetector.max_width``).
    """

    detect: bool = True
    margin: float = 0.15
    min_face: int = 30
    detect_width: int = 320


@dataclass(frozen=True)
class Face:
    """One face of a frame: its box, the model's top class, and every class's probability."""

    box: Box
    emotion: str
    confidence: float
    probabilities: dict[str, float]
    smoothed_emotion: str | None = None

    @property
    def shown(self) -> str:
        """The label to show: the smoothed one where a smoother follows the face."""
        return self.smoothed_emotion or self.emotion


@dataclass(frozen=True)
class FrameResult:
    """A frame's faces (largest first), each stage's milliseconds, and the annotated BGR copy if drawn."""

    faces: list[Face]
    stage_ms: dict[str, float]
    annotated: np.ndarray | None = None


class FramePipeline:
    """Faces and emotions of one frame at a time. Not thread-safe: one caller at a time (the detector's
    cascade and the compiled model call are shared state)."""

    def __init__(self, classifier: FaceClassifier, options: FaceOptions = FaceOptions()):
        self.classifier, self.options = classifier, options
        self.detector = (
            FaceDetector(min_size=options.min_face, max_width=options.detect_width) if options.detect else None
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classifier.class_names

    def __call__(self, frame: np.ndarray, smoother: LabelSmoother | None = None, draw: bool = False) -> FrameResult:
        """``frame``: a grayscale, BGR or BGRA image of any integer or float type; ``smoother``: the
        video's label smoother (None for a still image); ``draw``: also return an annotated BGR copy."""
        tic = time.perf_counter()
        frame = to_uint8(frame)  # 16-bit and float images too; the annotated copy is drawn on this
        gray = to_gray(frame)
        if self.detector is None:
            box, face = whole_image_face(gray)
            boxes, crops = [box], [face]
            t1 = time.perf_counter()
            detect_ms = 0.0
        else:
            boxes = self.detector.detect(gray)
            t1 = time.perf_counter()
            detect_ms = (t1 - tic) * 1000
            crops = [crop_face(gray, b, self.options.margin) for b in boxes]
        faces = np.stack(crops) if crops else np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)
        t2 = time.perf_counter()
        probs = self.classifier(faces)
        t3 = time.perf_counter()
        names = self.classifier.class_names
        labels = [names[i] for i in probs.argmax(axis=1)] if len(probs) else []
        smoothed = smoother.update(boxes, labels) if smoother is not None else [None] * len(boxes)
        found = [
            Face(b, label, float(p.max()), {n: float(v) for n, v in zip(names, p, strict=True)}, shown)
            for b, label, p, shown in zip(boxes, labels, probs, smoothed, strict=True)
        ]
        annotated = None
        if draw:
            annotated = to_bgr(frame)
            for face in found:
                draw_face(annotated, face.box, face.shown, face.probabilities[face.shown])
        stage_ms = {
            "detect": detect_ms,
            "preprocess": (t2 - t1) * 1000,
            "predict": (t3 - t2) * 1000,
            "draw": (time.perf_counter() - t3) * 1000,
        }
        return FrameResult(found, stage_ms, annotated)
