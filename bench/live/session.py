"""One client's stream: its frames through the shared :class:`FramePipeline`, each answered with one
JSON message the page draws (boxes, labels, the largest face's probabilities, per-stage milliseconds).

Each client has its own label smoother (two browsers show two different faces), but all share one
pipeline, which the server calls from one worker thread: the model is never run twice at once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.errors import os_error_text
from bench.inference.frames import FramePipeline
from bench.inference.smoothing import LabelSmoother
from bench.live.frames import decode_frame
from bench.live.record import Recorder


class ClientSession:
    """Args:
    pipeline: the shared per-frame pipeline.
    client: this client's number, for the terminal lines and the recorded files' names.
    window: frames in each face's label mode (``--window``, as ``bench predict`` smooths video).
    record: folder for :class:`Recorder`'s files, or None to write nothing.
    """

    def __init__(self, pipeline: FramePipeline, client: int, window: int = 10, record: Path | None = None):
        self.pipeline, self.client = pipeline, client
        self.smoother = LabelSmoother(window)
        self.recorder: Recorder | None = None
        self.problem: str | None = None  # a recording fault, for the server to report once
        if record is not None:
            try:
                self.recorder = Recorder(record, client)
            except OSError as exc:
                self.problem = f"client {client}: not recording: {os_error_text(exc)}"
        self.frames, self.started = 0, time.perf_counter()

    def answer_bytes(self, data: bytes, max_bytes: int, max_side: int) -> dict:
        """A browser's encoded frame: checked, decoded (``decode`` ms), then :meth:`answer`."""
        tic = time.perf_counter()
        frame = decode_frame(data, max_bytes, max_side, color=self.recorder is not None)
        return self.answer(frame, {"decode": (time.perf_counter() - tic) * 1000})

    def answer(self, frame: np.ndarray, extra_ms: dict[str, float] | None = None) -> dict:
        """The page's message for one BGR frame (``type: result``)."""
        result = self.pipeline(frame, self.smoother, draw=self.recorder is not None)
        self.frames += 1
        faces = [
            {"box": f.box.as_list(), "emotion": f.emotion, "shown": f.shown, "confidence": round(f.confidence, 4)}
            for f in result.faces
        ]
        largest = result.faces[0].probabilities if result.faces else None  # the detector sorts largest first
        message = {
            "type": "result",
            "seq": self.frames,
            "width": int(frame.shape[1]),
            "height": int(frame.shape[0]),
            "faces": faces,
            "probabilities": {k: round(v, 4) for k, v in largest.items()} if largest else None,
            "stage_ms": {k: round(v, 2) for k, v in {**(extra_ms or {}), **result.stage_ms}.items()},
        }
        if self.recorder is not None:
            try:
                self.recorder.write(message, result.annotated)
            except OSError as exc:  # a full disk: the stream goes on, unrecorded
                self.problem = f"client {self.client}: recording stopped: {os_error_text(exc)}"
                self.close()
                self.recorder = None
        return message

    def take_problem(self) -> str | None:
        """The recording fault not yet reported, if any (then cleared)."""
        problem, self.problem = self.problem, None
        return problem

    @property
    def fps(self) -> float:
        """Answered frames per second since the client connected."""
        elapsed = time.perf_counter() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def close(self) -> list[Path]:
        """The recorded files (none without ``--record``)."""
        try:
            return self.recorder.close() if self.recorder is not None else []
        except OSError:
            return []
