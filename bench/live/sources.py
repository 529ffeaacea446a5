"""``--source``: a camera on the machine (``0``, ``1``...) or a video file or URL, read by OpenCV in a
thread that keeps only the newest frame. The page pulls frames one at a time; whatever arrived while
the model was busy is dropped, never queued, so what the page shows lags the camera by one frame at
most. A file is paced at its own frame rate, as if it were a camera."""

from __future__ import annotations

import threading
import time

import numpy as np

from bench.errors import BenchError

STALL_SECONDS = 3.0  # a camera that gives no frame for this long has stopped


def parse_source(text: str) -> int | str:
    """``"0"`` -> camera device 0; anything else is a file path or URL, as OpenCV opens it."""
    return int(text) if text.isdigit() else text


def describe(source: int | str) -> str:
    return f"camera {source}" if isinstance(source, int) else f"'{source}'"


class LatestFrameSource:
    """Opens ``source`` at :meth:`start`, reads it from the first :meth:`next_after` until :meth:`stop`."""

    def __init__(self, source: int | str):
        self.source, self.name = source, describe(source)
        self.frame: np.ndarray | None = None
        self.count = 0  # frames read so far: a client waits for a newer one than it last got
        self.problem: str | None = None  # why no more frames will come (ended, stopped)
        self._capture, self._stop = None, threading.Event()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> LatestFrameSource:
        """Open the source (a one-line error when it cannot be) and start reading."""
        import cv2

        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            fix = (
                "check that it exists (ls /dev/video*) and no other program holds it, or leave out --source "
                "to use the browser's camera"
                if isinstance(self.source, int)
                else "check the path or URL (a video OpenCV's FFmpeg can read)"
            )
            raise BenchError(f"cannot open {self.name}; {fix}")
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        pace = 1.0 / fps if isinstance(self.source, str) and 0 < fps < 1000 else 0.0
        self._thread = threading.Thread(target=self._read, args=(pace,), name="bench-live-source", daemon=True)
        return self

    def _reading(self) -> None:
        """Start reading at the first request, not at :meth:`start`: a video plays from its first frame for
        the first viewer rather than running out before anyone opens the page."""
        with self._cond:
            if self._thread is not None and self._thread.ident is None:
                self._thread.start()

    def _read(self, pace: float) -> None:
        last_good, next_at = time.monotonic(), time.monotonic()
        try:
            while not self._stop.is_set():
                ok, frame = self._capture.read()
                now = time.monotonic()
                if ok and frame is not None:
                    with self._cond:
                        self.frame, self.count, last_good = frame, self.count + 1, now
                        self._cond.notify_all()
                elif isinstance(self.source, str):
                    self._finish(f"{self.name} ended after {self.count} frames; restart bench live to play it again")
                    return
                elif now - last_good > STALL_SECONDS:
                    self._finish(f"{self.name} stopped giving frames (unplugged, or taken by another program?)")
                    return
                else:
                    time.sleep(0.05)
                if pace:
                    next_at = max(next_at + pace, now)
                    self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            self._capture.release()

    def _finish(self, problem: str) -> None:
        with self._cond:
            self.problem = problem
            self._cond.notify_all()

    def next_after(self, seen: int, timeout: float = STALL_SECONDS) -> tuple[np.ndarray | None, int]:
        """The newest frame once it is newer than frame number ``seen`` (blocks up to ``timeout``):
        ``(frame, its number)``, or ``(None, seen)`` when none came (see :attr:`problem`)."""
        self._reading()
        with self._cond:
            self._cond.wait_for(lambda: self.count > seen or self.problem is not None, timeout)
            if self.count > seen:
                return self.frame, self.count
            return None, seen

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.ident is not None:
            self._thread.join(timeout=5)
        elif self._capture is not None:
            self._capture.release()  # opened, never read
