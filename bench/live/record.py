"""``--record DIR``: one client's stream kept on disk, the only thing ``bench live`` ever writes.

Per client, ``live-<time>-<n>.jsonl`` (one line per answered frame: its time, size and faces) and
``live-<time>-<n>.mp4`` (the frames annotated as ``bench predict --out`` draws them). OpenCV's writer
raises nothing on a failed write, so the JSON lines are flushed each frame: a full disk loses the tail."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench.errors import BenchError, os_error_text

RECORD_FPS = 24.0  # the mp4's nominal rate; the real times are in the JSON lines


def check_record_dir(folder: Path) -> Path:
    """Create ``folder`` before the server starts, so an unwritable one is a one-line error at once."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".bench-live-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"cannot write to --record {folder}: {os_error_text(exc)}; choose a writable folder") from exc
    return folder


class Recorder:
    """Writes one client's frames; :meth:`close` at the end (the mp4 is unplayable without it)."""

    def __init__(self, folder: Path, client: int):
        stem = folder / f"live-{time.strftime('%Y%m%d-%H%M%S')}-{client}"
        self.lines_path, self.video_path = stem.with_suffix(".jsonl"), stem.with_suffix(".mp4")
        self.lines = self.lines_path.open("w", encoding="utf-8")
        self.video, self.size = None, None

    def write(self, message: dict, annotated: np.ndarray) -> None:
        import cv2

        record = {k: message[k] for k in ("seq", "width", "height", "faces")}
        self.lines.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        self.lines.flush()
        if self.video is None:
            self.size = annotated.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self.video = cv2.VideoWriter(str(self.video_path), fourcc, RECORD_FPS, self.size[::-1])
        if annotated.shape[:2] == self.size:
            self.video.write(annotated)  # a frame of another size (the camera changed) is only in the JSON

    def close(self) -> list[Path]:
        """Finish both files; returns them."""
        self.lines.close()
        if self.video is not None:
            self.video.release()
        return [p for p in (self.lines_path, self.video_path) if p.exists()]
