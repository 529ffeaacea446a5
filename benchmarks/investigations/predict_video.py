"""Real-time use: frames per second and per-stage latency of ``bench predict`` on a video.

Writes a 640x480 video of moving synthetic faces (two per frame), then runs bench's predict pipeline
(Haar detection, crop, one batched compiled model call per frame, smoothing, drawing and encoding the
annotated video) with the baseline CNN and ResNet50 + hybrid head at the cpu recipe's image size.
The models are untrained: speed does not depend on the weights. Prints one line per model.

    python benchmarks/investigations/predict_video.py [--frames 150] [--backbone baseline_cnn --backbone resnet50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def write_video(path: Path, frames: int) -> Path:
    import cv2

    from bench.data.synthetic import synthesize

    faces, _, _ = synthesize(8, seed=0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640), 110, np.uint8)
        for k, (top, left) in enumerate(((80, 60), (150, 360))):
            side = 150
            dx = int(20 * np.sin(i / 10 + k))
            face = cv2.resize(faces[(i // 25 + k) % len(faces)], (side, side), interpolation=cv2.INTER_CUBIC)
            frame[top : top + side, left + dx : left + dx + side] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def measure(backbone: str, video: Path, out_dir: Path) -> str:
    import keras

    from bench.inference.classifier import FaceClassifier
    from bench.inference.predict import PredictOptions, predict_files
    from bench.models import build_model
    from bench.recipe_load import load_recipe

    recipe = load_recipe("cpu")
    model, spec = build_model(
        backbone=backbone,
        head="hybrid",
        image_size=recipe.data.image_size,
        head_options=recipe.model.head_options.get("hybrid", {}),
    )
    classifier = FaceClassifier(model)
    classifier(np.zeros((2, 48, 48), np.uint8))  # trace once, as a long-running service would
    tic = time.perf_counter()
    report = predict_files(classifier, [str(video)], PredictOptions(out_dir=out_dir))
    wall = time.perf_counter() - tic
    stages = report.stage_summary()
    faces = len(report.faces) / max(report.video_frames, 1)
    keras.backend.clear_session()
    per_stage = "  ".join(f"{k} {v['mean']:.1f} (p95 {v['p95']:.1f})" for k, v in stages.items())
    end_to_end = 1000 * wall / max(report.video_frames, 1)
    return (
        f"{backbone}+hybrid @{spec.image_size}px: {report.video_fps:.1f} frames/s, "
        f"{end_to_end:.1f} ms/frame end to end, {faces:.2f} faces/frame; mean ms per frame: {per_stage}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--backbone", action="append", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "faces.mp4", args.frames)
        print(f"video: {args.frames} frames, 640x480, 2 synthetic faces per frame")
        for backbone in args.backbone or ["baseline_cnn", "resnet50"]:
            print(measure(backbone, video, Path(tmp) / "out"), flush=True)


if __name__ == "__main__":
    main()
