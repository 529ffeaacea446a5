"""Drawing predictions on frames: a box coloured by emotion, the label and its confidence."""

from __future__ import annotations

import numpy as np

from bench.inference.faces import Box

# BGR, one distinct colour per emotion (angry ... neutral).
EMOTION_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230),
    "disgust": (40, 160, 40),
    "fear": (180, 60, 160),
    "happy": (0, 215, 255),
    "sad": (200, 110, 30),
    "surprise": (0, 140, 255),
    "neutral": (190, 190, 190),
}


def draw_face(frame: np.ndarray, box: Box, emotion: str, confidence: float) -> None:
    """Draw in place on a BGR frame."""
    import cv2

    color = EMOTION_COLORS.get(emotion, (255, 255, 255))
    thickness = max(1, round(min(frame.shape[:2]) / 240))
    cv2.rectangle(frame, (box.x, box.y), (box.x + box.w, box.y + box.h), color, thickness)
    label = f"{emotion} {confidence:.0%}"
    scale = max(0.4, box.w / 220)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(0, box.y - th - base - 4)
    cv2.rectangle(frame, (box.x, top), (box.x + tw + 4, top + th + base + 4), color, -1)
    cv2.putText(frame, label, (box.x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame.copy()
