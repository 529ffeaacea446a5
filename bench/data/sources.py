"""The dispatcher that picks a loader for a data spec: a CSV file, an image-folder root, or synthetic."""

from __future__ import annotations

from pathlib import Path

from bench.data.dataset import FER2013_HINT, FerData
from bench.data.fer2013 import load_csv
from bench.data.folders import load_folder
from bench.data.synthetic import load_synthetic_spec
from bench.errors import BenchError


def load_data(spec: str | Path, *, skip_bad: bool = False, seed: int = 0, cache: bool = True) -> FerData:
    """Load a data set from a CSV file, an image-folder root, or ``synthetic[:N[:SEED]]``.

    Args:
        spec: path to ``fer2013.csv`` / ``.csv.gz``, a folder holding ``train/`` and ``test/``, or
            ``synthetic`` (optionally ``synthetic:N`` or ``synthetic:N:SEED``).
        skip_bad: drop malformed rows / unreadable images instead of failing.
        seed: seed of the stratified validation hold-out where the layout has no validation split.
        cache: reuse parsed arrays cached under the user cache dir (CSV and synthetic).
    """
    text = str(spec)
    if text == "synthetic" or text.startswith("synthetic:"):
        return load_synthetic_spec(text, cache=cache)
    path = Path(text).expanduser()
    if not path.exists():
        raise BenchError(f"data path '{path}' does not exist; {FER2013_HINT}")
    if path.is_dir():
        return load_folder(path, skip_bad=skip_bad, seed=seed)
    return load_csv(path, skip_bad=skip_bad, seed=seed, cache=cache)
