"""The dispatcher that picks a loader for a data spec: a CSV file, an image-folder root, or synthetic."""

from __future__ import annotations

from pathlib import Path

from bench.data.dataset import FER2013_HINT, FerData
from bench.data.fer2013 import load_csv
from bench.data.folders import load_folder
from bench.data.synthetic import load_synthetic_spec
from bench.errors import BenchError


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


def load_for_recipe(recipe, source: str | Path | None = None, *, skip_bad: bool = False) -> FerData:
    """The data a resolved recipe trains on: ``data.source`` (or ``source``, where a resumed run found
    its file) with the recipe's label set, votes and target mode, its classes checked against the
    recipe's class names (``class_weights.boost``, ``branch_classes``). ``bench run``, ``--resume`` and
    ``bench tune`` all load through here, so they cannot disagree on the labels."""
    from bench.config import check_class_names

    cfg = recipe.data
    data = load_data(
        source if source is not None else cfg.source,
        skip_bad=skip_bad,
        seed=recipe.run.seed,
        labels=cfg.labels,
        votes=cfg.votes or None,
        targets=cfg.targets,
    )
    check_class_names(recipe, data.class_names)
    return data


def _load(spec: str | Path, *, skip_bad: bool, seed: int, cache: bool) -> FerData:
    text = str(spec)
    if text == "synthetic" or text.startswith("synthetic:"):
        return load_synthetic_spec(text, cache=cache)
    path = Path(text).expanduser()
    if not path.exists():
        raise BenchError(f"data path '{path}' does not exist; {FER2013_HINT}")
    if path.is_dir():
        return load_folder(path, skip_bad=skip_bad, seed=seed)
    return load_csv(path, skip_bad=skip_bad, seed=seed, cache=cache)
