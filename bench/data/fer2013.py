"""The Kaggle FER2013 CSV layout (``emotion,pixels,Usage``), plain or gzip, with a parsed-array cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from bench import FACE_SIZE, NUM_CLASSES
from bench.data.cache import cache_dir, file_sha256
from bench.data.dataset import FerData, stratified_holdout
from bench.errors import BenchError

N_PIXELS = FACE_SIZE * FACE_SIZE
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
CACHE_VERSION = "1"
PROTOCOL_USAGE = "Usage column: Training -> train, PublicTest -> val, PrivateTest -> test"
PROTOCOL_NO_USAGE = "no Usage column: all rows are training data; a stratified seeded 10% of them -> val; no test"


def _row_problem(text: str, emotion: str, usage: str | None) -> tuple[str, str] | None:
    """(kind, detail) of why one CSV row is malformed, or None if it is fine (the slow, exact path)."""
    if not emotion.isdigit() or int(emotion) >= NUM_CLASSES:
        return "unknown label", f"unknown label '{emotion}' (expected 0-{NUM_CLASSES - 1})"
    if usage is not None and usage not in USAGE_TO_SPLIT:
        return "unknown Usage", f"unknown Usage '{usage}' (expected {', '.join(USAGE_TO_SPLIT)})"
    tokens = str(text).split()
    for tok in tokens:
        if not tok.isdigit():
            return "non-integer pixel", f"pixel value '{tok}' is not an integer 0-255"
        if int(tok) > 255:
            return "pixel out of range", f"pixel value {tok} is outside 0-255"
    if len(tokens) != N_PIXELS:
        return "wrong pixel count", f"expected {N_PIXELS} pixel values, got {len(tokens)}"
    return None


def _parse_pixels(pixels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse pixel strings fast; returns (images, ok mask). Rows failing the fast path are marked bad."""
    images = np.zeros((len(pixels), N_PIXELS), dtype=np.uint8)
    ok = np.ones(len(pixels), dtype=bool)
    for i, text in enumerate(pixels):
        if not isinstance(text, str):
            ok[i] = False
            continue
        try:
            values = np.fromstring(text, dtype=np.int32, sep=" ")  # text mode: fast and not deprecated
        except ValueError:  # trailing garbage; the slow path says exactly what is wrong
            ok[i] = False
            continue
        if values.size != N_PIXELS or values.min(initial=0) < 0 or values.max(initial=0) > 255:
            ok[i] = False
            continue
        images[i] = values
    return images, ok


def _read_table(path: Path):
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise BenchError(f"{path}: cannot be read as a CSV ({exc.__class__.__name__}: {exc})") from exc
    frame.columns = [c.strip() for c in frame.columns]
    missing = {"emotion", "pixels"} - set(frame.columns)
    if missing:
        raise BenchError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; expected the Kaggle FER2013 header "
            "'emotion,pixels,Usage'"
        )
    return frame


def parse_csv(path: Path, *, skip_bad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, int]]:
    """Parse a FER2013 CSV into (images, labels, usage or None, dropped counts); validates every row."""
    import warnings

    frame = _read_table(path)
    has_usage = "Usage" in frame.columns
    emotions = frame["emotion"].str.strip().tolist()
    usages = frame["Usage"].str.strip().tolist() if has_usage else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        images, ok = _parse_pixels(frame["pixels"].tolist())
    labels = np.array([int(e) if e.isdigit() else -1 for e in emotions], dtype=np.int64)
    ok &= (labels >= 0) & (labels < NUM_CLASSES)
    if has_usage:
        ok &= np.isin(np.array(usages, dtype=object), list(USAGE_TO_SPLIT))
    dropped: dict[str, int] = {}
    for i in np.flatnonzero(~ok):
        kind, detail = _row_problem(frame["pixels"].iat[i], emotions[i], usages[i] if has_usage else None) or (
            "malformed row",
            "malformed row",
        )
        if not skip_bad:
            raise BenchError(f"{path} line {i + 2}: {detail} (fix the row, or pass --skip-bad to drop bad rows)")
        dropped[kind] = dropped.get(kind, 0) + 1
    usage = np.array(usages, dtype=object)[ok] if has_usage else None
    return images[ok].reshape(-1, FACE_SIZE, FACE_SIZE), labels[ok], usage, dropped


def _cached_parse(path: Path, *, skip_bad: bool, cache: bool):
    if not cache:
        return parse_csv(path, skip_bad=skip_bad)
    key = f"{file_sha256(path)}-{int(skip_bad)}-v{CACHE_VERSION}"
    cached = cache_dir() / f"csv-{key}.npz"
    if cached.exists():
        try:
            with np.load(cached, allow_pickle=False) as z:
                usage = z["usage"] if z["has_usage"] else None
                dropped = dict(zip(z["dropped_keys"].tolist(), z["dropped_counts"].tolist(), strict=True))
                return z["images"], z["labels"], usage, dropped
        except Exception:
            cached.unlink(missing_ok=True)  # a corrupt cache entry is rebuilt, never trusted
    images, labels, usage, dropped = parse_csv(path, skip_bad=skip_bad)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".npz")
    os.close(fd)
    np.savez(
        tmp,
        images=images,
        labels=labels,
        usage=np.array(usage if usage is not None else [], dtype=str),
        has_usage=usage is not None,
        dropped_keys=np.array(list(dropped), dtype=str),
        dropped_counts=np.array(list(dropped.values()), dtype=np.int64),
    )
    os.replace(tmp, cached)  # atomic: a concurrent reader never sees half a file
    return images, labels, usage, dropped


def load_csv(path: Path, *, skip_bad: bool = False, seed: int = 0, cache: bool = True) -> FerData:
    """Load the Kaggle CSV (or the ``icml_face_data.csv`` header variant, or a CSV without Usage)."""
    images, labels, usage, dropped = _cached_parse(Path(path), skip_bad=skip_bad, cache=cache)
    if usage is not None:
        splits = np.array([USAGE_TO_SPLIT[str(u)] for u in usage], dtype="<U5")
        protocol = PROTOCOL_USAGE
    else:
        splits = np.full(len(labels), "train", dtype="<U5")
        splits[stratified_holdout(labels, 0.1, seed)] = "val"
        protocol = f"{PROTOCOL_NO_USAGE} (seed {seed})"
    if len(labels) == 0:
        raise BenchError(f"{path}: no usable rows")
    return FerData(images, labels, splits, source=str(path), protocol=protocol, dropped=dropped)
