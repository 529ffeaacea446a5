"""The one typed data object every loader returns, and the dispatcher that picks a loader."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import CLASS_NAMES
from bench.errors import BenchError

SPLITS = ("train", "val", "test")
IMAGE_SIZE = 48

FER2013_HINT = (
    "get FER2013 from Kaggle: the CSV 'fer2013.csv' (challenges-in-representation-learning-facial-"
    "expression-recognition-challenge) or the image folders 'train/<class>/', 'test/<class>/' "
    "(msambare/fer2013), or use --data synthetic"
)


@dataclass(frozen=True, eq=False)
class FerData:
    """Images, labels and split membership of one data set.

    Attributes:
        images: uint8 array (N, 48, 48), grayscale, 0-255.
        labels: int64 array (N,), indices into ``class_names``.
        splits: array (N,) of ``"train"``, ``"val"`` or ``"test"``.
        source: where the data came from (a path or ``synthetic:...``).
        protocol: how the splits were formed, in words, so a run can log it.
        n_converted: images converted to grayscale or resized while loading (folder layout).
        dropped: reason -> count of items dropped with ``skip_bad``.
        label_set: where the labels come from: ``fer2013`` (the file's own) or ``ferplus`` (crowd votes).
        targets: float32 (N, len(class_names)) soft training targets, each row summing to 1, or None
            when ``labels`` are the targets (see ``bench.data.ferplus``).
    """

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    source: str
    protocol: str
    class_names: tuple[str, ...] = CLASS_NAMES
    n_converted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    label_set: str = "fer2013"
    targets: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or self.images.dtype != np.uint8:
            raise BenchError(f"images must be uint8 (N, 48, 48); received {self.images.dtype} {self.images.shape}")
        if len(self.labels) != n or len(self.splits) != n:
            raise BenchError("images, labels and splits must have the same length")
        if self.targets is not None and self.targets.shape != (n, len(self.class_names)):
            raise BenchError(
                f"targets must be (N, {len(self.class_names)}) = ({n}, {len(self.class_names)}); received "
                f"{self.targets.shape}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of one split, in file order."""
        if name not in SPLITS:
            raise BenchError(f"unknown split '{name}'; expected one of {', '.join(SPLITS)}")
        mask = self.splits == name
        return self.images[mask], self.labels[mask]

    def split_sizes(self) -> dict[str, int]:
        return {s: int(np.sum(self.splits == s)) for s in SPLITS}

    def fingerprint(self) -> str:
        """sha256 over images, labels and splits (and the class names and soft targets where they are not
        FER2013's defaults): two runs with equal fingerprints saw the same data."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.astype("<i8").tobytes())
        h.update("\n".join(self.splits.tolist()).encode())
        if self.class_names != CLASS_NAMES:
            h.update(("\n" + ",".join(self.class_names)).encode())
        if self.targets is not None:
            h.update(self.targets.astype("<f4").tobytes())
        return h.hexdigest()

    @property
    def name(self) -> str:
        """A short data set name (used as the default MLflow experiment)."""
        return dataset_name(self.source)


def dataset_name(source: str) -> str:
    """The short name of a data source (``fer2013`` for ``.../fer2013.csv.gz``, ``synthetic`` for
    ``synthetic:N``): the default MLflow experiment, shared by ``bench run`` and ``bench compare``."""
    if source.startswith("synthetic"):
        return "synthetic"
    stem = Path(source).name
    for suffix in (".gz", ".csv"):
        stem = stem.removesuffix(suffix)
    return stem or "data"


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask selecting a seeded, per-class ``fraction`` of ``labels`` (at least one per class
    when the class has two or more items)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        k = int(round(fraction * len(idx)))
        if k == 0 and len(idx) >= 2:
            k = 1
        mask[rng.permutation(idx)[:k]] = True
    return mask


def load_data(
    spec: str | Path,
    *,
    skip_bad: bool = False,
    seed: int = 0,
    cache: bool = True,
    labels: str = "fer2013",
    votes: str | Path | None = None,
    targets: str = "majority",
) -> FerData:
    """Load a data set from a CSV file, an image-folder root, or ``synthetic[:N[:SEED]]``.

    Args:
        spec: path to ``fer2013.csv`` / ``.csv.gz``, a folder holding ``train/`` and ``test/``, or
            ``synthetic`` (optionally ``synthetic:N`` or ``synthetic:N:SEED``).
        skip_bad: drop malformed rows / unreadable images instead of failing.
        seed: seed of the stratified validation hold-out where the layout has no validation split.
        cache: reuse parsed arrays cached under the user cache dir (CSV and synthetic).
        labels: ``fer2013`` (the file's labels) or ``ferplus`` (FER+ crowd votes, 8 classes; see
            ``bench.data.ferplus``).
        votes: the FER+ votes file for ``labels="ferplus"``; default: the one beside the CSV.
        targets: ``majority`` or ``crossentropy`` (soft training targets; ``labels="ferplus"`` only).
    """
    data = _load(spec, skip_bad=skip_bad, seed=seed, cache=cache)
    if labels == "fer2013" and votes is None and targets == "majority":
        return data
    from bench.data.ferplus import LABEL_SETS, VOTES_HINT, find_votes, relabel

    if labels not in LABEL_SETS:
        raise BenchError(f"labels must be one of {', '.join(LABEL_SETS)}; received labels='{labels}'")
    if labels == "fer2013":
        raise BenchError(
            f"votes and targets='{targets}' need labels='ferplus'; FER2013 has one label per image and no votes"
        )
    votes = votes if votes is not None else find_votes(spec)
    if votes is None:
        raise BenchError(f"labels='ferplus' needs FER+ votes and none were found beside '{spec}'; {VOTES_HINT}")
    return relabel(data, votes, targets=targets)


def _load(spec: str | Path, *, skip_bad: bool, seed: int, cache: bool) -> FerData:
    text = str(spec)
    if text == "synthetic" or text.startswith("synthetic:"):
        from bench.data.synthetic import load_synthetic_spec

        return load_synthetic_spec(text, cache=cache)
    path = Path(text).expanduser()
    if not path.exists():
        raise BenchError(f"data path '{path}' does not exist; {FER2013_HINT}")
    if path.is_dir():
        from bench.data.folders import load_folder

        return load_folder(path, skip_bad=skip_bad, seed=seed)
    from bench.data.fer2013 import load_csv

    return load_csv(path, skip_bad=skip_bad, seed=seed, cache=cache)
