"""Data-quality checks: class balance, duplicates (within and across splits, conflicting labels),
blank images. FER2013 really has all of these."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from bench.data.dataset import SPLITS, FerData
from bench.data.weights import balanced_weights


def image_hashes(images: np.ndarray) -> list[bytes]:
    """A 16-byte digest per image; equal digests mean identical pixels."""
    return [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in images]


def duplicate_groups(images: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the groups of identical images (groups of size >= 2)."""
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, h in enumerate(image_hashes(images)):
        groups[h].append(i)
    return [np.array(g) for g in groups.values() if len(g) > 1]


def cross_split_train_duplicates(data: FerData) -> np.ndarray:
    """Indices of training images whose pixels also appear in validation or test (for ``dedupe``)."""
    hashes = image_hashes(data.images)
    held_out = {h for h, s in zip(hashes, data.splits, strict=True) if s != "train"}
    return np.array(
        [i for i, (h, s) in enumerate(zip(hashes, data.splits, strict=True)) if s == "train" and h in held_out],
        dtype=np.int64,
    )


def data_report(data: FerData, votes=None, *, votes_required: bool = True) -> dict:
    """Everything ``bench data check`` shows, as plain data.

    Args:
        data: the data set.
        votes: FER+ votes aligned to ``data`` (a path or ``bench.data.ferplus.Votes``); adds a
            ``ferplus`` section.
        votes_required: when False (votes found beside the data, not asked for), votes that do not
            line up leave a ``ferplus.skipped`` reason instead of failing the whole check.
    """
    train_labels = data.labels[data.splits == "train"]
    counts = {s: np.bincount(data.labels[data.splits == s], minlength=len(data.class_names)).tolist() for s in SPLITS}
    train_counts = np.array(counts["train"])
    nonzero = train_counts[train_counts > 0]
    groups = duplicate_groups(data.images)
    spanning = sum(len(set(data.splits[g])) > 1 for g in groups)
    conflicting = sum(len(set(data.labels[g])) > 1 for g in groups)
    constant = data.images.reshape(len(data), -1)
    blank = constant.min(axis=1) == constant.max(axis=1)
    return {
        "source": data.source,
        "protocol": data.protocol,
        "fingerprint": data.fingerprint(),
        "n_images": len(data),
        "split_sizes": data.split_sizes(),
        "class_names": list(data.class_names),
        "class_counts": counts,
        "imbalance_ratio": float(nonzero.max() / nonzero.min()) if len(nonzero) else float("nan"),
        "balanced_class_weights": [round(float(w), 4) for w in balanced_weights(train_labels, len(data.class_names))],
        "duplicate_groups": len(groups),
        "duplicate_images": int(sum(len(g) for g in groups)),
        "duplicate_groups_across_splits": int(spanning),
        "duplicate_groups_conflicting_labels": int(conflicting),
        "train_images_also_in_val_or_test": int(len(cross_split_train_duplicates(data))),
        "blank_images": int(blank.sum()),
        "all_black_images": int((constant.max(axis=1) == 0).sum()),
        "n_converted": data.n_converted,
        "dropped": dict(data.dropped),
    } | ({"ferplus": _ferplus_section(data, votes, votes_required)} if votes is not None else {})


def _ferplus_section(data: FerData, votes, required: bool) -> dict:
    from bench.data.ferplus import ferplus_report
    from bench.errors import BenchError

    try:
        return ferplus_report(data, votes)
    except BenchError as exc:
        if required:
            raise
        return {"skipped": str(exc)}
