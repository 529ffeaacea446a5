"""``bench predict``: detect faces in images and videos, classify each, annotate, time every stage.

The per-frame work is :class:`bench.inference.frames.FramePipeline`, shared with ``bench live``.

Returns plain records; the CLI renders them. A bad input becomes an error record and the others are
still processed; no face in an input is a record with ``faces = 0``, not an error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import CLASS_NAMES
from bench.errors import BenchError, first_line, os_error_text
from bench.images import UnsupportedImage, read_image
from bench.inference.classifier import FaceClassifier
from bench.inference.frames import FRAME_STAGES, FaceOptions, FramePipeline
from bench.inference.smoothing import LabelSmoother

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
STAGES = ("read", *FRAME_STAGES)


@dataclass(frozen=True)
class PredictOptions:
    detect: bool = True
    margin: float = 0.15
    stride: int = 1
    window: int = 10
    out_dir: Path | None = None
    min_face: int = 30
    detect_width: int = 320  # see FaceDetector.max_width

    @property
    def faces(self) -> FaceOptions:
        """How faces are found and cropped: the part of these options ``bench live`` shares."""
        return FaceOptions(self.detect, self.margin, self.min_face, self.detect_width)


@dataclass
class FaceRecord:
    source: str
    frame: int | None
    box: list[int]
    emotion: str
    confidence: float
    probabilities: dict[str, float]
    smoothed_emotion: str | None = None


@dataclass
class InputRecord:
    source: str
    kind: str  # image | video | unknown
    frames: int = 0
    faces: int = 0
    annotated: str | None = None
    error: str | None = None


@dataclass
class PredictReport:
    faces: list[FaceRecord] = field(default_factory=list)
    inputs: list[InputRecord] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    video_frames: int = 0
    video_seconds: float = 0.0
    class_names: tuple[str, ...] = CLASS_NAMES  # the model's classes: the columns of every face's probabilities

    @property
    def video_fps(self) -> float:
        return self.video_frames / self.video_seconds if self.video_seconds else float("nan")

    def stage_summary(self) -> dict[str, dict[str, float]]:
        """Per-frame milliseconds of each stage: mean, p50, p95."""
        out = {}
        for stage, values in self.stage_ms.items():
            if values:
                arr = np.asarray(values)
                out[stage] = {
                    "mean": float(arr.mean()),
                    "p50": float(np.percentile(arr, 50)),
                    "p95": float(np.percentile(arr, 95)),
                }
        return out


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given; folders replaced by the image and video files inside them (recursively, sorted)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
        else:
            out.append(path)
    return out


class _Pipeline:
    """The shared :class:`FramePipeline` plus what ``predict`` adds: each face as a record naming its
    input and frame, and the stage times of every frame kept for the report's summary."""

    def __init__(self, classifier: FaceClassifier, options: PredictOptions, report: PredictReport, root: Path):
        self.options, self.report = options, report
        self.root = root  # annotated copies mirror the inputs' tree below this folder
        self.frames = FramePipeline(classifier, options.faces)

    def frame(self, frame: np.ndarray, source: str, index: int | None, smoother: LabelSmoother | None, draw: bool):
        result = self.frames(frame, smoother, draw)
        for stage, ms in result.stage_ms.items():
            self.report.stage_ms[stage].append(ms)
        records = [
            FaceRecord(source, index, f.box.as_list(), f.emotion, f.confidence, f.probabilities, f.smoothed_emotion)
            for f in result.faces
        ]
        self.report.faces.extend(records)
        return records, result.annotated


def _video_frames(capture) -> Iterator[np.ndarray]:
    """Frames of an opened ``cv2.VideoCapture``, released at the end."""
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def common_folder(paths: list[Path]) -> Path:
    """The deepest folder holding every path: annotated copies mirror the inputs' tree below it."""
    return Path(os.path.commonpath([os.path.dirname(_absolute(p)) for p in paths])) if paths else Path.cwd()


def _absolute(path: Path) -> str:
    return os.path.abspath(path)  # unlike Path.absolute, resolves "..": a copy never lands outside --out


def annotated_path(out_dir: Path, source: Path, root: Path, suffix: str) -> Path:
    """Where the annotated copy of ``source`` goes: its place below ``root`` mirrored under ``out_dir``,
    its whole file name kept (``a.jpg`` -> ``a.jpg.annotated.png``), so no two inputs share a copy."""
    rel = Path(_absolute(source)).relative_to(root)
    return out_dir / rel.parent / f"{rel.name}.annotated{suffix}"


def _write_image(target: Path, image: np.ndarray) -> None:
    """Encode, then write with Python's file API, so a failed write raises an OSError naming the path
    and the cause (``cv2.imwrite`` only returns False)."""
    import cv2

    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"OpenCV could not encode the annotated image for {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.tobytes())


def _process_image(pipe: _Pipeline, path: Path, record: InputRecord) -> None:
    tic = time.perf_counter()
    frame = read_image(path)
    if frame is None:
        record.error = "not a readable image or video"
        return
    pipe.report.stage_ms["read"].append((time.perf_counter() - tic) * 1000)
    record.kind, record.frames = "image", 1
    out_dir = pipe.options.out_dir
    try:
        faces, annotated = pipe.frame(frame, str(path), None, None, draw=out_dir is not None)
    except UnsupportedImage as exc:
        record.error = str(exc)
        return
    record.faces = len(faces)
    if out_dir is not None:
        target = annotated_path(out_dir, path, pipe.root, ".png")
        try:
            _write_image(target, annotated)
            record.annotated = str(target)
        except OSError as exc:
            record.error = f"annotated copy not written: {os_error_text(exc)}"


def _process_video(pipe: _Pipeline, path: Path, record: InputRecord) -> None:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        record.error = "not a readable video"
        return
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    record.kind = "video"
    smoother = LabelSmoother(pipe.options.window)
    out_dir, writer, written = pipe.options.out_dir, None, 0
    start = time.perf_counter()
    tic = start
    for index, frame in enumerate(_video_frames(capture)):
        if index % pipe.options.stride:
            tic = time.perf_counter()
            continue
        pipe.report.stage_ms["read"].append((time.perf_counter() - tic) * 1000)
        faces, annotated = pipe.frame(frame, str(path), index, smoother, draw=out_dir is not None)
        record.frames += 1
        record.faces += len(faces)
        if out_dir is not None and record.error is None:
            if writer is None:
                writer = _video_writer(
                    annotated_path(out_dir, path, pipe.root, ".mp4"), fps / pipe.options.stride, annotated, record
                )
            if writer is not None:
                writer.write(annotated)
                written += 1
        tic = time.perf_counter()
    if writer is not None:
        writer.release()
        problem = _video_problem(Path(record.annotated), written)
        if problem:
            record.error, record.annotated = f"annotated copy not written: '{record.annotated}' {problem}", None
    if record.frames == 0:
        record.error = "no frames could be decoded"
        return
    pipe.report.video_frames += record.frames
    pipe.report.video_seconds += time.perf_counter() - start


def _video_problem(target: Path, written: int) -> str | None:
    """What is wrong with the annotated video just written, read back (None if it holds every frame):
    ``cv2.VideoWriter`` reports no failed write, so a disk that filled mid-video leaves a file cut
    short (often without the index a player needs) that only reading it shows."""
    import cv2

    if not target.is_file() or target.stat().st_size == 0:
        return "is empty (is the disk full?)"
    capture = cv2.VideoCapture(str(target))
    try:
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    if frames < written:
        return f"holds {frames} of its {written} frames (is the disk full?)"
    return None


def _video_writer(target: Path, fps: float, first: np.ndarray, record: InputRecord):
    """An opened ``cv2.VideoWriter`` for the annotated copy, or None with ``record.error`` set (OpenCV
    does not raise when it cannot open a file)."""
    import cv2

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        record.error = f"annotated copy not written: {os_error_text(exc)}"
        return None
    height, width = first.shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        writer.release()
        record.error = f"annotated copy not written: cannot open '{target}' for writing"
        return None
    record.annotated = str(target)
    return writer


def predict_files(classifier: FaceClassifier, inputs: list[str], options: PredictOptions) -> PredictReport:
    """Run the classifier over every input; see the module docstring for how failures are reported."""
    if options.stride < 1:
        raise ValueError(f"stride must be >= 1. Received: stride={options.stride}")
    if options.out_dir is not None:
        try:
            options.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(
                f"cannot create --out {options.out_dir}: {os_error_text(exc)}; choose a writable folder"
            ) from exc
    report = PredictReport(class_names=classifier.class_names)
    paths = expand_inputs(inputs)
    pipe = _Pipeline(classifier, options, report, common_folder(paths))
    for path in paths:
        record = InputRecord(str(path), "unknown")
        report.inputs.append(record)
        _process(pipe, path, record)
    return report


def _process(pipe: _Pipeline, path: Path, record: InputRecord) -> None:
    """One input; whatever OpenCV refuses in it (an odd channel layout, a broken frame) is its error
    record, and the next input still runs."""
    import cv2

    try:
        if not path.is_file():
            record.error = "no such file"
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            _process_video(pipe, path, record)
        else:
            _process_image(pipe, path, record)
    except cv2.error as exc:
        record.error = f"OpenCV cannot process it: {first_line(str(exc).strip().splitlines()[-1])}"
    except OSError as exc:  # unreadable (permissions, a disk error): this input's error, not the command's
        record.error = f"cannot read it: {exc.strerror or exc}"
    except BenchError as exc:
        record.error = str(exc)
