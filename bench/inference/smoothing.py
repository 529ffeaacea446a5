"""Steady video labels: each face is followed from frame to frame by box overlap, and its shown label
is the most common prediction over its last ``window`` frames (the seed used the mode over 10)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from bench.inference.faces import Box


@dataclass
class _Track:
    box: Box
    labels: deque = field(default_factory=deque)
    missed: int = 0


class LabelSmoother:
    """Args:
    window: frames in the mode (1 = no smoothing).
    min_iou: box overlap that makes a detection the same face as a track.
    max_missed: frames a track survives without a matching detection.
    """

    def __init__(self, window: int = 10, min_iou: float = 0.3, max_missed: int = 5):
        if window < 1:
            raise ValueError(f"window must be >= 1. Received: window={window}")
        self.window, self.min_iou, self.max_missed = window, min_iou, max_missed
        self.tracks: list[_Track] = []

    def update(self, boxes: list[Box], labels: list[str]) -> list[str]:
        """The smoothed label of each face of the current frame, in the order given."""
        unmatched = list(range(len(self.tracks)))
        out = []
        for box, label in zip(boxes, labels, strict=True):
            best, best_iou = None, self.min_iou
            for t in unmatched:
                overlap = self.tracks[t].box.iou(box)
                if overlap >= best_iou:
                    best, best_iou = t, overlap
            if best is None:
                track = _Track(box, deque(maxlen=self.window))
                self.tracks.append(track)
            else:
                unmatched.remove(best)
                track = self.tracks[best]
                track.box, track.missed = box, 0
            track.labels.append(label)
            counts = Counter(track.labels)
            top = max(counts.values())
            # Ties go to the most recent of the tied labels, so a change shows as soon as it leads.
            out.append(next(lab for lab in reversed(track.labels) if counts[lab] == top))
        for t in unmatched:
            self.tracks[t].missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out
