"""The one typed data object every loader returns, and the helpers loaders share.

Loaders import this module; it imports none of them (the dispatcher is :mod:`bench.data.sources`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import CLASS_NAMES, FACE_SIZE
from bench.errors import BenchError

SPLITS = ("train", "val", "test")

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
        if self.images.shape[1:] != (FACE_SIZE, FACE_SIZE) or self.images.dtype != np.uint8:
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


def split_fingerprint(images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> str:
    """sha256 over one evaluated split's images and labels, in order, and the class names: two runs with
    equal fingerprints were scored on the same images against the same labels, so a paired test between
    them is valid whatever they trained on (FER+ ``crossentropy`` and ``majority`` runs, for one)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.asarray(labels).astype("<i8").tobytes())
    h.update(",".join(class_names).encode())
    return h.hexdigest()


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
