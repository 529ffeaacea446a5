"""Face detection (OpenCV's frontal-face Haar cascade, shipped inside opencv-python-headless) and the
crop that turns a detected face into what every bench model takes: raw 0-255 grayscale 48x48."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench import FACE_SIZE
from bench.errors import BenchError
from bench.images import UnsupportedImage, to_gray, to_uint8  # noqa: F401 - the one image reader's, used here

HAAR_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    """A face box in frame pixels (top-left corner, width, height)."""

    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def iou(self, other: Box) -> float:
        """Intersection over union: how the video smoother follows a face from frame to frame."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union else 0.0


class FaceDetector:
    """OpenCV's Haar cascade, the seed's detector.

    Args:
        scale_factor, min_neighbors: ``detectMultiScale``'s trade-off of speed and false positives.
        min_size: smallest face side in pixels of the original frame.
        max_width: frames wider than this are searched at this width (boxes are mapped back); the
            cascade's cost grows with the pixel count, and webcam faces are large. 0 = full size.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 30, max_width: int = 0):
        import cv2

        path = cv2.data.haarcascades + HAAR_FILE
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise BenchError(f"cannot load the Haar cascade {path}; reinstall opencv-python-headless<5")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.max_width = max_width

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Faces in a grayscale frame, largest first."""
        import cv2

        factor = 1.0
        if self.max_width and gray.shape[1] > self.max_width:
            factor = self.max_width / gray.shape[1]
            size = (self.max_width, max(1, round(gray.shape[0] * factor)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        side = max(8, round(self.min_size * factor))
        found = self.cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        boxes = [Box(*(int(round(v / factor)) for v in b)) for b in found]
        return sorted(boxes, key=lambda b: -b.w * b.h)


def expand_box(box: Box, margin: float, width: int, height: int) -> Box:
    """Grow ``box`` by ``margin`` of its size on every side, clamped to the frame.

    FER2013's faces include some hair and chin; the Haar box is tighter, hence a margin."""
    dx, dy = int(round(box.w * margin)), int(round(box.h * margin))
    x0, y0 = max(0, box.x - dx), max(0, box.y - dy)
    x1, y1 = min(width, box.x + box.w + dx), min(height, box.y + box.h + dy)
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def crop_face(gray: np.ndarray, box: Box, margin: float = 0.0) -> np.ndarray:
    """The face under ``box`` (grown by ``margin``) as uint8 48x48: raw pixels, no normalization —
    the model does its own preprocessing."""
    import cv2

    height, width = gray.shape[:2]
    b = expand_box(box, margin, width, height)
    face = gray[b.y : b.y + b.h, b.x : b.x + b.w]
    return cv2.resize(face, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def whole_image_face(gray: np.ndarray) -> tuple[Box, np.ndarray]:
    """``--no-detect``: the whole image is one already-cropped face."""
    import cv2

    height, width = gray.shape[:2]
    face = (
        gray
        if (height, width) == (FACE_SIZE, FACE_SIZE)
        else cv2.resize(gray, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    )
    return Box(0, 0, width, height), face
