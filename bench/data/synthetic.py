"""Procedurally drawn 48x48 faces whose expression encodes the 7 FER classes.

Never FER2013: an embedded, download-free stand-in for demos and tests. Each class has a mean
expression (mouth curvature and openness, brow angle and height, eye openness, nose wrinkle); every
face draws its parameters around that mean with overlapping spreads, then pose, scale, lighting,
noise and occlusion jitter, so the task is learnable but not trivially separable.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from bench import CLASS_NAMES, FACE_SIZE
from bench.data.cache import cache_dir
from bench.data.dataset import FerData
from bench.data.fer2013 import load_csv
from bench.errors import BenchError

# FER2013's training-split class proportions (angry ... neutral).
FER2013_PROPORTIONS = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], dtype=float) / 28709
DEFAULT_N = 4000
MIN_N, MAX_N = 50, 100_000
"""Sizes ``synthetic:N`` accepts: 100,000 faces (~3x FER2013) are ~230 MB as arrays and ~1 GB as CSV text
while parsed; a typo of a few more digits would exhaust memory rather than fail."""

# Per-class mean expression: mouth curve (+ smile), mouth open, brow angle (+ = inner ends down),
# brow raise (pixels up), eye openness, nose wrinkle.
EXPRESSIONS = {
    "angry": (-0.35, 0.10, 0.55, -1.0, 0.75, 0.0),
    "disgust": (-0.55, 0.30, 0.35, -0.5, 0.60, 1.0),
    "fear": (-0.20, 0.55, -0.45, 1.5, 1.35, 0.0),
    "happy": (1.00, 0.30, 0.00, 0.0, 0.85, 0.0),
    "sad": (-0.80, 0.00, -0.50, 0.3, 0.70, 0.0),
    "surprise": (0.00, 1.10, 0.00, 2.0, 1.45, 0.0),
    "neutral": (0.00, 0.00, 0.00, 0.0, 1.00, 0.0),
}
_SPREAD = np.array([0.35, 0.22, 0.28, 0.7, 0.25, 0.35])
_GRID_Y, _GRID_X = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE].astype(np.float32)


def _soft(d: np.ndarray, width: float = 0.8) -> np.ndarray:
    """Anti-aliased mask from a signed distance (negative inside)."""
    return 1.0 / (1.0 + np.exp(np.clip(d / width, -30, 30)))


def _segment_distance(u, v, x0, y0, x1, y1):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy + 1e-6), 0, 1)
    return np.hypot(u - (x0 + t * dx), v - (y0 + t * dy))


def draw_face(params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one face (float32 48x48 in 0..1) from expression ``params`` plus random pose and lighting."""
    curve, mouth_open, brow_angle, brow_raise, eye_open, wrinkle = params
    scale = rng.uniform(0.85, 1.12)
    cx, cy = 24 + rng.normal(0, 1.8), 25 + rng.normal(0, 1.8)
    theta = np.deg2rad(rng.normal(0, 9))
    # Face coordinates (u, v): rotate the pixel grid about the face centre, in units of ~1 px at scale 1.
    x, y = _GRID_X - cx, _GRID_Y - cy
    u = (np.cos(theta) * x + np.sin(theta) * y) / scale
    v = (-np.sin(theta) * x + np.cos(theta) * y) / scale

    background = rng.uniform(0.1, 0.6) + rng.uniform(-0.15, 0.15) * (_GRID_X / FACE_SIZE - 0.5)
    skin = rng.uniform(0.55, 0.9)
    light = 1 + rng.uniform(-0.35, 0.35) * (u / 16)
    face = _soft(np.hypot(u / 15.5, v / 19.5) * 15.5 - 15.5, 1.0)
    img = background * (1 - face) + skin * light * face

    dark = skin * 0.25
    for side in (-1, 1):
        ex, ey = side * 6.0, -4.0
        eye_r = np.hypot((u - ex) / 3.0, (v - ey) / max(0.35, 1.6 * eye_open)) - 1
        img = img * (1 - _soft(eye_r * 2.0, 0.5)) + dark * _soft(eye_r * 2.0, 0.5)
        by = ey - 4.0 - brow_raise
        inner_dy = brow_angle * 2.2  # positive: inner end lower (frown)
        d = _segment_distance(u, v, side * 2.0, by + inner_dy, side * 10.0, by - inner_dy)
        img = img * (1 - _soft(d - 0.9, 0.5)) + dark * _soft(d - 0.9, 0.5)

    # Mouth: a parabola whose corners rise (smaller v) for curve > 0, thickened by openness.
    my, w = 9.0, 6.5
    t = np.clip(u / w, -1.3, 1.3)
    centre_line = my - curve * 2.5 * (t**2 - 0.5) - 0.6 * wrinkle * t
    thickness = 0.7 + 2.4 * max(mouth_open, 0.0)
    inside = (np.abs(u) < w) & (v > centre_line - thickness / 2) & (v < centre_line + thickness / 2)
    mouth = _soft(np.where(inside, -1.0, np.abs(v - centre_line) - thickness / 2 + (np.abs(u) > w) * 3), 0.5)
    img = img * (1 - mouth) + dark * 0.6 * mouth
    if wrinkle > 0.3:  # nose wrinkle lines: the disgust cue
        for k in (-1, 1):
            d = _segment_distance(u, v, k * 1.5, 1.0, k * 3.5, 3.0)
            img = img * (1 - 0.6 * _soft(d - 0.5, 0.4) * min(wrinkle, 1.5))
    if rng.random() < 0.25:  # random occlusion box (hand, hair)
        h, wd = rng.integers(6, 16, size=2)
        y0, x0 = rng.integers(0, FACE_SIZE - h), rng.integers(0, FACE_SIZE - wd)
        img[y0 : y0 + h, x0 : x0 + wd] = rng.uniform(0, 1)
    img = img * rng.uniform(0.7, 1.2) + rng.normal(0, rng.uniform(0.02, 0.08), img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def synthesize(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` faces in FER2013's class proportions: (uint8 images (n,48,48), labels, Usage strings).

    Usage is 80 % Training, 10 % PublicTest, 10 % PrivateTest, assigned at random (seeded).
    """
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be 1-{MAX_N}; received n={n}")
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(CLASS_NAMES), size=n, p=FER2013_PROPORTIONS)
    means = np.array([EXPRESSIONS[c] for c in CLASS_NAMES])
    images = np.empty((n, FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    for i, label in enumerate(labels):
        params = means[label] + rng.normal(0, _SPREAD)
        images[i] = np.round(draw_face(params, rng) * 255).astype(np.uint8)
    usage = rng.choice(["Training", "PublicTest", "PrivateTest"], size=n, p=[0.8, 0.1, 0.1])
    return images, labels.astype(np.int64), usage


def write_csv(path: Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` synthetic faces in the Kaggle CSV schema (gzip when the name ends in ``.gz``)."""
    images, labels, usage = synthesize(n, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emotion", "pixels", "Usage"])
        for img, label, use in zip(images, labels, usage, strict=True):
            writer.writerow([int(label), " ".join(map(str, img.ravel().tolist())), use])
    return path


def load_synthetic_spec(spec: str, *, cache: bool = True) -> FerData:
    """Load ``synthetic[:N[:SEED]]``: generated once, written as a Kaggle CSV in the cache, read back by
    the same CSV loader as real data."""
    parts = spec.split(":")
    try:
        n = int(parts[1]) if len(parts) > 1 and parts[1] else DEFAULT_N
        seed = int(parts[2]) if len(parts) > 2 else 0
    except ValueError as exc:
        raise BenchError(f"bad synthetic spec '{spec}'; expected synthetic, synthetic:N or synthetic:N:SEED") from exc
    if len(parts) > 3 or not MIN_N <= n <= MAX_N:
        raise BenchError(f"bad synthetic spec '{spec}'; expected synthetic[:N[:SEED]] with N {MIN_N}-{MAX_N}")
    path = cache_dir() / f"synthetic-n{n}-s{seed}.csv.gz"
    if not path.exists() or not cache:
        tmp = path.with_suffix(f".tmp{np.random.randint(1 << 30)}.gz")
        write_csv(tmp, n, seed)
        tmp.replace(path)
    data = load_csv(path, cache=cache)
    return FerData(
        data.images,
        data.labels,
        data.splits,
        source=f"synthetic:{n}:{seed}",
        protocol="synthetic faces (not FER2013); " + data.protocol,
    )


def face_frame(
    width: int = 640, height: int = 480, *, top: int = 100, left: int = 200, side: int = 144, seed: int = 0
) -> np.ndarray:
    """A BGR uint8 frame (height, width, 3): one neutral synthetic face, ``side`` pixels, pasted on grey at
    (``top``, ``left``). The Haar cascade finds it (seed 0 has been checked to be found): the camera frame
    of ``bench live``'s tests, browser test and speed benchmark, which must not need a real face."""
    import cv2

    face = np.round(draw_face(np.array(EXPRESSIONS["neutral"]), np.random.default_rng(seed)) * 255).astype(np.uint8)
    frame = np.full((height, width), 120, np.uint8)
    frame[top : top + side, left : left + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
