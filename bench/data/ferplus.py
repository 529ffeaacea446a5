"""FER+ crowd labels for the FER2013 images: read the votes, turn them into labels or soft targets.

FER+ (Barsoum et al., ICMI 2016) re-labels every FER2013 image with 10 crowd taggers. The votes file
holds one line per row of the FER2013 CSV, in the same order, with ten counts in FER+'s own column
order (:data:`VOTE_COLUMNS`). bench keeps FER2013's class ids and appends ``contempt`` as class 7
(:data:`FERPLUS_CLASS_NAMES`), so a FER2013 class means the same id under both label sets.

The two target modes follow Microsoft's reference reader (``microsoft/FERPlus``, ``src/ferplus.py``,
``_process_data``), which produced the paper's figures. Both first drop single votes as outliers (a
count of 1 becomes 0) and both drop an image whose winner is ``unknown`` or ``NF`` (not a face):

- ``majority``: the top count must exceed half of the remaining votes (unknown and NF included in the
  total); otherwise the image is dropped. A strict majority cannot tie.
- ``crossentropy``: take whole vote levels from the top (ties taken together) while fewer than 75 % of
  the remaining votes and fewer than 3 emotions are taken; stop at the level of ``unknown``/``NF``
  (emotions tied with them are still taken). Drop the image if the taken votes are at most half of the
  remaining votes (so when unknown/NF is the top) or more than 3 emotions tie in. The target is the
  taken votes, normalised; a training row's label is its argmax, ties going to FER+'s column order. The
  paper's ``probability`` mode draws a one-hot label from this same target at each step (a training
  choice, not a data one).

Validation and test always use ``majority`` labels, as the paper evaluates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import CLASS_NAMES
from bench.data.dataset import SPLITS, FerData
from bench.errors import BenchError

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
"""FER+'s ten vote columns in its own order (the 8 emotions, then ``unknown`` and ``NF`` = not a face)."""

FERPLUS_CLASS_NAMES: tuple[str, ...] = (*CLASS_NAMES, "contempt")
"""The 8 FER+ classes in bench's order: FER2013's 7 with their ids unchanged, then contempt (id 7)."""

_BENCH_NAME = {"happiness": "happy", "sadness": "sad", "anger": "angry"}  # FER+ names nouns, FER2013 adjectives
TO_BENCH = np.array([FERPLUS_CLASS_NAMES.index(_BENCH_NAME.get(n, n)) for n in VOTE_COLUMNS[:8]])
"""``TO_BENCH[j]`` is bench's class id of FER+ emotion column ``j`` (neutral -> 6, happiness -> 3, ...)."""

LABEL_SETS = ("fer2013", "ferplus")
TARGET_MODES = ("majority", "crossentropy")
VOTES_FILE = "fer2013plus_votes.csv"
VOTES_HINT = (
    f"pass --votes PATH to FER+ votes aligned row by row to this CSV ('{VOTES_FILE}' beside the data or in "
    "../ferplus/, or microsoft/FERPlus's fer2013new.csv for Kaggle's original row order)"
)
_NO_VOTES = "no FER+ votes"
_NOT_CLEAR = "no clear majority"
_UNKNOWN_NF = "unknown or not a face"


@dataclass(frozen=True, eq=False)
class Votes:
    """FER+ vote counts aligned to the rows of one FER2013 CSV.

    Attributes:
        counts: int64 array (N, 10) in :data:`VOTE_COLUMNS` order; zeros where ``present`` is False.
        present: bool array (N,): the row has FER+ votes (FER+ left ~180 non-faces out); a row of
            blanks or of zeros has none.
        source: the votes file.
    """

    counts: np.ndarray
    present: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.counts)


def find_votes(data_source: str | Path) -> Path | None:
    """The votes file beside a FER2013 CSV (same folder, or ``../ferplus/``), or None: the shared data
    keeps ``fer2013/fer2013.csv.gz`` and ``ferplus/fer2013plus_votes.csv`` side by side."""
    path = Path(str(data_source)).expanduser()
    if not path.is_file():
        return None
    for candidate in (path.parent / VOTES_FILE, path.parent.parent / "ferplus" / VOTES_FILE):
        if candidate.is_file():
            return candidate
    return None


def read_votes(path: str | Path) -> Votes:
    """Read a votes CSV with the ten :data:`VOTE_COLUMNS` (other columns are ignored); a row whose ten
    cells are all blank has no votes. Every other row needs ten non-negative integers."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise BenchError(f"votes file '{path}' does not exist; {VOTES_HINT}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise BenchError(f"{path}: cannot be read as a CSV ({exc.__class__.__name__}: {exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in VOTE_COLUMNS if c not in frame.columns]
    if missing:
        raise BenchError(
            f"{path}: missing vote column(s) {', '.join(missing)}; expected a header with {','.join(VOTE_COLUMNS)}"
        )
    cells = frame[list(VOTE_COLUMNS)].apply(lambda col: col.str.strip()).to_numpy(dtype=str)
    blank = cells == ""
    present = ~blank.all(axis=1)
    valid = np.char.isdigit(cells) | blank
    bad = np.flatnonzero(~valid.all(axis=1) | (present & blank.any(axis=1)))
    if len(bad):
        i = int(bad[0])
        raise BenchError(
            f"{path} line {i + 2}: votes must be ten non-negative integers (or all ten blank); received "
            f"{','.join(cells[i])}"
        )
    counts = np.where(blank, "0", cells).astype(np.int64)
    return Votes(counts, present & (counts.sum(axis=1) > 0), str(path))


def align_votes(data: FerData, votes: Votes | str | Path) -> Votes:
    """``votes`` checked to line up with ``data`` row for row: the same row count, and no rows dropped
    while loading (``--skip-bad`` shifts every later row) or reordered (an image-folder layout)."""
    votes = votes if isinstance(votes, Votes) else read_votes(votes)
    if Path(data.source).is_dir():
        raise BenchError(
            f"FER+ votes align with the rows of the FER2013 CSV, not an image folder ('{data.source}'); "
            "pass --data with the CSV the votes were made for"
        )
    if data.dropped:
        raise BenchError(
            f"FER+ votes align row by row, but {sum(data.dropped.values())} bad row(s) were dropped "
            "(--skip-bad); fix those rows in the CSV instead of skipping them"
        )
    if len(votes) != len(data):
        raise BenchError(
            f"{votes.source} has {len(votes)} vote rows but {data.source} has {len(data)} images; the votes "
            "file must have one line per CSV row, in the same order"
        )
    return votes


def _without_outliers(counts: np.ndarray) -> np.ndarray:
    """Counts with single votes removed: the reference reader treats one tagger's lone vote as noise."""
    return np.where(counts <= 1, 0, counts)


def majority_labels(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, labels)`` under the reference ``majority`` rule (see the module docstring).

    Args:
        counts: int array (N, 10) in :data:`VOTE_COLUMNS` order.
    Returns:
        keep: bool (N,), the image has a strict majority for one of the 8 emotions.
        labels: int64 (N,), bench class ids (0-7); meaningful where ``keep``.
    """
    votes = _without_outliers(np.asarray(counts))
    top = votes.argmax(axis=1)
    keep = (votes.max(axis=1) * 2 > votes.sum(axis=1)) & (top < 8)
    return keep, TO_BENCH[np.minimum(top, 7)].astype(np.int64)


def _crossentropy_row(raw: np.ndarray) -> np.ndarray | None:
    """One row's reference ``crossentropy`` target over the 8 emotions (FER+ order), or None to drop."""
    votes = _without_outliers(raw)
    total = votes.sum()
    taken = np.zeros(len(votes), dtype=np.float64)
    n_taken = 0
    for level in sorted(set(votes[votes > 0].tolist()), reverse=True):
        if taken.sum() >= 0.75 * total or n_taken >= 3:
            break
        tied = np.flatnonzero(votes == level)
        emotions = tied[tied < 8]  # unknown and NF sort last, so ties with them keep the emotions first
        taken[emotions] = level
        n_taken += len(emotions)
        if len(emotions) < len(tied):  # unknown or NF ends the target (as the top: nothing taken, dropped)
            break
    if taken.sum() <= 0.5 * total or n_taken > 3:
        return None
    return taken[:8] / taken[:8].sum()


def crossentropy_targets(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, targets)`` under the reference ``crossentropy`` rule (see the module docstring).

    Returns:
        keep: bool (N,).
        targets: float32 (N, 8) in bench's class order, each kept row summing to 1; zeros where dropped.
    """
    counts = np.asarray(counts)
    keep = np.zeros(len(counts), dtype=bool)
    targets = np.zeros((len(counts), 8), dtype=np.float32)
    for i, raw in enumerate(counts):
        row = _crossentropy_row(raw)
        if row is not None:
            keep[i] = True
            targets[i, TO_BENCH] = row
    return keep, targets


def drop_reasons(votes: Votes) -> np.ndarray:
    """Per row, why the ``majority`` rule drops it ('' when kept): no votes, unknown/NF has the
    majority, or no class has a strict majority."""
    counts = _without_outliers(votes.counts)
    strict = counts.max(axis=1) * 2 > counts.sum(axis=1)
    reasons = np.full(len(votes), "", dtype=object)
    reasons[~strict] = _NOT_CLEAR
    reasons[strict & (counts.argmax(axis=1) >= 8)] = _UNKNOWN_NF
    reasons[~votes.present] = _NO_VOTES
    return reasons


def _describe_drops(reasons: np.ndarray, n_rows: int) -> str:
    kinds = [(k, int(np.sum(reasons == k))) for k in (_NO_VOTES, _UNKNOWN_NF, _NOT_CLEAR)]
    dropped = sum(n for _, n in kinds)
    return f"dropped {dropped} of {n_rows} rows (" + ", ".join(f"{k}: {n}" for k, n in kinds) + ")"


def relabel(data: FerData, votes: Votes | str | Path, *, targets: str = "majority") -> FerData:
    """``data`` (FER2013 labels, as loaded from the CSV) with FER+ labels over the 8 classes.

    Rows the rule drops leave the data set; the protocol says how many and why. Validation and test
    always carry ``majority`` labels, as the paper evaluates.

    Args:
        data: a FER2013 CSV data set loaded without dropped rows.
        votes: the aligned votes, or the path of the votes file.
        targets: ``majority`` (one label per image; ``targets`` stays None) or ``crossentropy`` (training
            rows kept by that rule, with vote distributions in ``targets``; val/test rows one-hot).
    """
    if targets not in TARGET_MODES:
        raise BenchError(f"targets must be one of {', '.join(TARGET_MODES)}; received targets='{targets}'")
    if data.label_set != "fer2013":
        raise BenchError(f"data already carries {data.label_set} labels; relabel the FER2013 data as loaded")
    votes = align_votes(data, votes)
    keep, labels = majority_labels(votes.counts)
    drops = _describe_drops(drop_reasons(votes), len(data))
    protocol = f"{data.protocol}; labels: FER+ majority vote over 8 classes, {drops}"
    soft = None
    if targets == "crossentropy":
        train = data.splits == "train"
        train_keep, train_targets = crossentropy_targets(votes.counts[train])
        keep[train] = train_keep
        soft = np.eye(8, dtype=np.float32)[labels]
        soft[train] = train_targets
        labels[train] = TO_BENCH[train_targets[:, TO_BENCH].argmax(axis=1)]  # ties go to FER+'s column order
        n_train = int(train_keep.sum())
        protocol += f"; training targets: FER+ vote distributions (crossentropy rule, {n_train} training rows kept)"
        soft = soft[keep]
    return FerData(
        data.images[keep],
        labels[keep],
        data.splits[keep],
        source=data.source,
        protocol=protocol,
        class_names=FERPLUS_CLASS_NAMES,
        n_converted=data.n_converted,
        dropped=dict(data.dropped),
        label_set="ferplus",
        targets=soft,
    )


def ferplus_report(data: FerData, votes: Votes | str | Path) -> dict:
    """What ``bench data check`` shows of FER+, as plain data: majority-vote class counts, dropped rows
    and why, rows without votes, and how often FER+ and FER2013 agree, per split.

    Agreement is over the rows both label sets keep; ``contempt`` is not a FER2013 class, so it is also
    given without the rows FER+ calls contempt.
    """
    votes = align_votes(data, votes)
    keep, labels = majority_labels(votes.counts)
    reasons = drop_reasons(votes)
    same = keep & (labels == data.labels)
    not_contempt = keep & (labels != 7)
    ce_keep, _ = crossentropy_targets(votes.counts[data.splits == "train"])

    def share(hits: np.ndarray, base: np.ndarray) -> float:
        return float(hits.sum() / base.sum()) if base.any() else float("nan")

    masks = {s: data.splits == s for s in SPLITS} | {"all": np.ones(len(data), dtype=bool)}
    crosstab = np.zeros((len(CLASS_NAMES), len(FERPLUS_CLASS_NAMES)), dtype=np.int64)
    np.add.at(crosstab, (data.labels[keep], labels[keep]), 1)
    return {
        "votes_source": votes.source,
        "class_names": list(FERPLUS_CLASS_NAMES),
        "class_counts": {s: np.bincount(labels[keep & masks[s]], minlength=8).tolist() for s in SPLITS},
        "kept": {s: int((keep & m).sum()) for s, m in masks.items()},
        "rows_without_votes": {s: int((~votes.present & m).sum()) for s, m in masks.items()},
        "dropped": {
            s: {k: int(((reasons == k) & m).sum()) for k in (_NO_VOTES, _UNKNOWN_NF, _NOT_CLEAR)}
            for s, m in masks.items()
        },
        "agreement_with_fer2013": {s: share(same & m, keep & m) for s, m in masks.items()},
        "agreement_without_contempt": {s: share(same & m, not_contempt & m) for s, m in masks.items()},
        "crossentropy_train_kept": int(ce_keep.sum()),
        "fer2013_by_ferplus": crosstab.tolist(),
    }
