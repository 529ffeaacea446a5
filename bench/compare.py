"""The leaderboard: finished runs -> one row per configuration, with bootstrap confidence intervals
of macro-F1 and a paired bootstrap test of every row against the leader on the same test images (the
statistics are :mod:`bench.bootstrap`'s).

Returns pandas DataFrames; rendering lives in the CLI and :mod:`bench.reports`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import CLASS_NAMES, NUM_CLASSES
from bench import run_record as rec
from bench import tracking as trk
from bench.bootstrap import bootstrap_index, paired_test, seed_mean_resamples
from bench.errors import BenchError
from bench.metrics import HEADLINE_METRICS
from bench.run_record import CONFIG_KEYS, COST_METRICS

HASH_COLUMN, RECIPE_COLUMN = f"params.{rec.RECIPE_HASH}", f"params.{rec.RECIPE}"
RECIPE_FIELDS = f"params.{rec.RECIPE_PREFIX}"  # the prefix of every logged recipe field's column
UNDERTRAINED_PASSES = 1.0
"""Rows that saw less than one pass over the training split are flagged: their rank says more about the
budget than about the backbone."""
# The seed study's reported ResNet50 + hybrid figures (GPU, ImageNet weights, 224 px; report section 4).
PAPER_REFERENCE = {"macro_f1": 0.5737, "balanced_accuracy": 0.5887, "log_loss": 1.056, "recall_happy": 0.8309}


@dataclass
class Leaderboard:
    table: pd.DataFrame  # noqa: F821 - pandas is imported lazily
    footnotes: list[str] = field(default_factory=list)
    split: str = "test"
    class_names: tuple[str, ...] = CLASS_NAMES  # the runs' classes: the per-class columns and figures
    label_set: str = "fer2013"


def _load_predictions(run_id: str, split: str, folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        path = trk.download_artifact(run_id, rec.PREDICTIONS_ARTIFACT, folder / run_id)
    except BenchError:
        return None
    truth, probs = rec.prediction_keys(split)
    with np.load(path) as z:
        return z[truth], z[probs]


def _runs_frame(experiments: list[str], uri: str | None, include_all: bool, filters: dict[str, str]):
    frame = trk.search_runs(experiments, uri)
    if not include_all and len(frame):
        frame = frame[frame["status"] == "FINISHED"]
    label_column = f"tags.{rec.LABEL_SET_TAG}"  # runs logged before label sets existed are FER2013's
    frame = frame.assign(
        **{label_column: frame[label_column].fillna("fer2013") if label_column in frame.columns else "fer2013"}
    )
    for key, value in filters.items():
        column = f"params.{key}" if f"params.{key}" in frame.columns else f"tags.{key}"
        if column not in frame.columns:
            raise BenchError(f"--filter {key}={value}: runs have no param or tag '{key}'")
        frame = frame[frame[column].astype(str) == value]
    if not len(frame):
        raise BenchError(
            f"no finished runs in experiment(s) {', '.join(experiments)}"
            + (" matching the filters" if filters else "")
            + "; train some with `bench run` first"
        )
    if HASH_COLUMN not in frame.columns:
        frame = frame.assign(**{HASH_COLUMN: "?"})
    frame = frame.assign(**{HASH_COLUMN: frame[HASH_COLUMN].fillna("?")})
    missing = [k for k in CONFIG_KEYS if f"params.{k}" not in frame.columns]
    if missing:
        raise BenchError(f"runs lack the param(s) {', '.join(missing)}: were they logged by `bench run`?")
    check_one_label_set(frame[label_column])
    return frame


_NOT_METHOD = tuple(f"{rec.RECIPE_PREFIX}{f}" for f in ("name", "description", "run.seed"))
"""Logged recipe fields a variant label should not list: not part of the recipe hash."""


def _method_columns(frame) -> list[str]:
    """The ``params.recipe.*`` columns that :func:`bench.recipe_io.recipe_hash` covers."""
    from bench.recipe_io import RUN_FIELDS, SPEED_FIELDS, SPEED_HEAD_OPTIONS

    skip = set(_NOT_METHOD) | {f"{rec.RECIPE_PREFIX}{f}" for f in RUN_FIELDS + SPEED_FIELDS}
    return [
        c
        for c in frame.columns
        if c.startswith(RECIPE_FIELDS)
        and c[len("params.") :] not in skip
        and not (".head_options." in c and c.rsplit(".", 1)[-1] in SPEED_HEAD_OPTIONS)
    ]


def variant_differences(frame) -> list[str]:
    """``cpu#1a2b3c: run.budget_minutes=30`` for each variant of a recipe run with several overrides: the
    logged recipe fields (``recipe.*`` params) whose values differ between its variants, so a reader
    knows what each ``#hash`` row changed without opening MLflow. A field that runs logged before it
    existed lack counts as its default (:data:`bench.recipe_io.LATER_DEFAULTS`), or shows as ``-``."""
    from bench.recipe_io import LATER_DEFAULTS, SPEED_FIELDS, flatten

    columns = _method_columns(frame)
    # The run's own record wins (as for a resume): runs logged before the recipe held the head and the
    # weights logged the recipe's defaults there.
    own = {f"{RECIPE_FIELDS}model.{k}": frame[f"params.{k}"] for k in (rec.HEAD, rec.WEIGHTS) if f"params.{k}" in frame}
    frame = frame.assign(**own)
    columns += [c for c in own if c not in columns]
    lines = []
    for recipe, runs in frame.groupby(RECIPE_COLUMN, sort=True):
        first = runs.drop_duplicates(HASH_COLUMN).set_index(HASH_COLUMN)[columns]
        if len(first) < 2:
            continue
        first = first.astype(object)
        for path, default in flatten(LATER_DEFAULTS).items():  # a table's fields are logged one by one
            if f"{RECIPE_FIELDS}{path}" in first.columns:
                first[f"{RECIPE_FIELDS}{path}"] = first[f"{RECIPE_FIELDS}{path}"].fillna(str(default))
        first = first.where(first.notna(), "-").astype(str)
        varying = sorted(c for c in columns if first[c].nunique() > 1)  # the store's column order varies
        # the run table's settings first, as these notes have always listed them
        ordered = sorted(SPEED_FIELDS, key=lambda f: not f.startswith("run."))
        speed = [f"{RECIPE_FIELDS}{f}" for f in ordered if f"{RECIPE_FIELDS}{f}" in runs.columns]
        speeds = runs.drop_duplicates(HASH_COLUMN).set_index(HASH_COLUMN)[speed]
        for recipe_hash, values in first[varying].iterrows():
            changed = ", ".join(f"{c[len(RECIPE_FIELDS) :]}={v}" for c, v in values.items())
            if not changed:  # hashed apart before a speed field left the hash (model.batchnorm, session 13)
                logged = speeds.loc[recipe_hash].dropna().items()  # a field older runs did not log is left out
                settings = ", ".join(f"{c[len(RECIPE_FIELDS) :]}={v}" for c, v in logged)
                changed = f"no recipe field differs (older runs; speed settings: {settings or 'none logged'})"
            lines.append(f"{recipe}#{str(recipe_hash)[:6]}: {changed}")
    return lines


def check_one_label_set(label_sets) -> str:
    """The one label set of the runs compared, or a one-line error: a FER+ run is scored on other test
    labels (8 classes, ~12% of the images dropped) than a FER2013 run, so their ranks mean nothing together."""
    counts = label_sets.value_counts()
    if len(counts) > 1:
        found = ", ".join(f"{name} ({n} runs)" for name, n in sorted(counts.items()))
        raise BenchError(
            f"runs of different label sets cannot be ranked together: {found}; compare one at a time with "
            f"--filter {rec.LABEL_SET_TAG}={sorted(counts.index)[-1]}"
        )
    return str(counts.index[0])


def build_leaderboard(
    experiments: list[str],
    *,
    uri: str | None = None,
    split: str = "test",
    sort: str = "macro_f1",
    n_boot: int = 1000,
    seed: int = 0,
    include_all: bool = False,
    filters: dict[str, str] | None = None,
    reference: bool = False,
) -> Leaderboard:
    """Aggregate runs per configuration and rank them.

    Args:
        experiments: MLflow experiment names.
        split: ``test`` or ``val``: which split's metrics and predictions rank the rows.
        sort: a metric name (without split prefix); log loss and ECE sort ascending.
        n_boot, seed: bootstrap resamples and their seed.
        include_all: keep FAILED / KILLED / RUNNING runs.
        filters: param or tag -> required value.
        reference: add the seed paper's reported ResNet50 row (reported, not measured).
    """
    import pandas as pd

    frame = _runs_frame(experiments, uri, include_all, filters or {})
    label_set = str(frame[f"tags.{rec.LABEL_SET_TAG}"].iat[0])
    if reference and label_set != "fer2013":
        raise BenchError(
            f"--reference paper adds the seed paper's FER2013 figures; these runs use the {label_set} labels, "
            "which that paper never scored: leave --reference out"
        )
    class_names = _class_names(frame)
    notes: list[str] = []
    fp_col = f"params.{rec.DATA_FINGERPRINT}"
    majority = frame[fp_col].mode().iat[0] if fp_col in frame.columns and frame[fp_col].notna().any() else None
    frame = frame.assign(_fp=frame.get(fp_col, pd.Series(index=frame.index, dtype=object)).fillna("?"))
    # --all: unfinished runs form rows of their own, so a FAILED run never moves a configuration's mean
    frame = frame.assign(_state=frame["status"].where(frame["status"] != "FINISHED", ""))
    groups = list(frame.groupby([f"params.{k}" for k in CONFIG_KEYS] + ["_fp", "_state"], sort=False))
    scored = [_scored_on(group, split) for _, group in groups]
    scored_majority = _majority_scored(scored, [len(group) for _, group in groups])
    rows, preds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for (key, group), scored_on in zip(groups, scored, strict=True):
            config = dict(zip(CONFIG_KEYS, key[:-2], strict=True))
            row, pred = _aggregate(config, group, split, Path(tmp), notes, class_names)
            # runs logged before the {split}_fingerprint param fall back to the whole data set's fingerprint
            same = scored_on == scored_majority if scored_on is not None else key[-2] == majority
            row["data"] = "same" if same else "DIFFERENT"
            row["state"] = key[-1]
            if key[-1]:
                row["config"] += f" [{key[-1]}]"
            rows.append(row)
            preds[len(rows) - 1] = pred
    table = pd.DataFrame(rows)
    variants = table.groupby("recipe")["recipe_hash"].transform("nunique")
    table["recipe"] = [
        f"{r}#{h[:6]}" if v > 1 else r for r, h, v in zip(table["recipe"], table["recipe_hash"], variants, strict=True)
    ]
    if (variants > 1).any():
        notes.append("recipe#xxxxxx: runs of the same recipe with different overrides (--set) are separate rows")
        notes.extend(variant_differences(frame))
    if table["config"].str.endswith("]").any():
        notes.append("[FAILED] / [KILLED] / [RUNNING] rows hold unfinished runs, kept out of the finished runs' rows")
    if (table["data"] == "DIFFERENT").any():
        notes.append(
            f"rows marked DIFFERENT were scored on other images or labels than the majority of runs (another "
            f"{split}_fingerprint; for runs logged before it, another data fingerprint): they are not comparable "
            "and are never tested against the leader"
        )
    notes.extend(evaluation_notes(table))
    table = _rank(table, preds, sort, n_boot, seed, notes, len(class_names))
    if reference:
        ref = {
            "rank": "-",
            "vs_leader": "REPORTED",
            "config": "resnet50+hybrid (paper)",
            "backbone": "resnet50",
            "head": "hybrid",
            "recipe": "paper",
            "n_runs": 0,
            "data": "reported",
            "tta": "-",
            **{f"{k}_mean": v for k, v in PAPER_REFERENCE.items()},
        }
        table = pd.concat([table, pd.DataFrame([ref])], ignore_index=True)
        notes.append(
            "'(paper)' is the seed report's ResNet50 figures as REPORTED there (GPU, ImageNet weights, "
            "224 px), not measured by bench"
        )
    if label_set != "fer2013":
        notes.append(f"label set: {label_set} ({len(class_names)} classes: {', '.join(class_names)})")
    return Leaderboard(table, notes, split, class_names, label_set)


def evaluation_notes(table) -> list[str]:
    """Footnotes on how rows were evaluated (``recipe.eval``): what the ``tta`` and ``T`` columns mean, and
    a warning when rows with and without test-time augmentation are ranked together."""
    notes = []
    tta = table["tta"].ne("none")
    if tta.any():
        notes.append(
            "tta: the test faces' probabilities averaged over views (flip: the face and its mirror; crops: ten "
            "crops and mirrors), recipe.eval.tta; the same model costs 2 or 10 forward passes per face"
        )
        if (~tta).any():
            notes.append(
                "rows with and without test-time augmentation are ranked together: a tta row's rank includes "
                "TTA's gain, not only its model's (its runs log test_plain_* without TTA); rank like with like "
                "with --filter recipe.eval.tta=none or =flip"
            )
    calibrated = table["temperature"].notna()
    if calibrated.any():
        notes.append(
            "T: the softmax temperature fitted on the validation split after training (recipe.eval.calibrate); "
            "those rows' logloss and ECE are calibrated" + ("; the other rows' are raw" if (~calibrated).any() else "")
        )
    return notes


def _class_names(frame) -> tuple[str, ...]:
    """The classes the runs were trained on (the ``class_names`` param; FER2013's 7 for runs logged
    before it existed); runs with different class lists are an error, as different label sets are."""
    column = f"params.{rec.CLASS_NAMES}"
    logged = frame[column].dropna().unique() if column in frame.columns else []
    if len(logged) > 1:
        raise BenchError(
            f"runs with different class lists cannot be ranked together: {' | '.join(sorted(logged))}; "
            "compare one data set at a time with --filter class_names=..."
        )
    return tuple(logged[0].split(",")) if len(logged) else CLASS_NAMES


def _scored_on(group, split: str) -> str | None:
    """What ``group``'s runs were scored on: their distinct ``{split}_fingerprint`` params, joined (one per
    seed with ``data.max_eval``, which subsets per seed), or None when a run predates that param."""
    column = f"params.{rec.fingerprint_param(split)}"
    if column not in group.columns or group[column].isna().any():
        return None
    return ",".join(sorted(group[column].unique()))


def _majority_scored(scored: list[str | None], n_runs: list[int]) -> str | None:
    """The ``_scored_on`` value the most runs share (None when no run logged it)."""
    counts: dict[str, int] = {}
    for value, n in zip(scored, n_runs, strict=True):
        if value is not None:
            counts[value] = counts.get(value, 0) + n
    return max(sorted(counts), key=counts.__getitem__) if counts else None


def _aggregate(config: dict, group, split: str, folder: Path, notes: list[str], class_names=CLASS_NAMES):
    """One leaderboard row for the runs of one configuration, and each of its seeds' predicted labels."""
    row = {
        "config": f"{config['backbone']}+{config['head']}",
        **config,
        "n_runs": len(group),
        "run_ids": ",".join(group["run_id"]),
    }
    metric_names = list(HEADLINE_METRICS) + [f"recall_{c}" for c in class_names]
    for name in metric_names:
        column = f"metrics.{rec.split_metric(split, name)}"
        values = group[column].dropna() if column in group.columns else []
        row[f"{name}_mean"] = float(np.mean(values)) if len(values) else np.nan
        row[f"{name}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else np.nan
    for name in COST_METRICS:
        column = f"metrics.{name}"
        row[name] = float(group[column].mean()) if column in group.columns else np.nan
    column = f"{RECIPE_FIELDS}eval.tta"
    tta = group[column].dropna() if column in group.columns else []
    row["tta"] = str(tta.iat[0]) if len(tta) else "none"  # one recipe hash: one mode; older runs had none
    column = f"metrics.{rec.TEMPERATURE}"  # logged by calibrated runs only
    row["temperature"] = float(group[column].mean()) if column in group.columns else np.nan
    if row["train_passes"] < UNDERTRAINED_PASSES:
        notes.append(
            f"{row['config']} ({config['recipe']}): under-trained, {row['train_passes']:.2f} passes over the "
            "training split; its rank reflects the budget more than the backbone"
        )
    if np.isnan(row["macro_f1_mean"]):
        notes.append(f"{row['config']} ({config['recipe']}): no {split}_macro_f1 logged (unfinished run?)")
    loaded = [_load_predictions(run_id, split, folder) for run_id in group["run_id"]]
    if any(p is None for p in loaded) or not loaded:
        notes.append(f"{row['config']} ({config['recipe']}): predictions.npz missing, so no confidence interval")
        return row, None
    y_true = loaded[0][0]
    if not len(y_true):  # a data set without this split (a CSV without Usage has no test): nothing to rank on
        notes.append(f"{row['config']} ({config['recipe']}): its data have no {split} split, so it is not ranked")
        return row, None
    if any(len(p[0]) != len(y_true) or not np.array_equal(p[0], y_true) for p in loaded):
        notes.append(f"{row['config']}: seeds were tested on different images; no interval")
        return row, None
    return row, (y_true, [p[1].argmax(axis=1) for p in loaded])


def _rank(table, preds, sort: str, n_boot: int, seed: int, notes: list[str], num_classes: int = NUM_CLASSES):
    column = f"{sort}_mean"
    if column not in table.columns:
        raise BenchError(f"--sort {sort}: unknown metric; use one of {', '.join(HEADLINE_METRICS)}")
    ascending = sort in ("log_loss", "ece")
    order = table[column].sort_values(ascending=ascending, na_position="last").index
    table = table.loc[order]
    finished = table["state"].eq("")  # a FAILED/KILLED row (--all) is never the leader others are tested against
    leader = next(
        (i for i in order if preds.get(i) is not None and table.at[i, "data"] == "same" and finished[i]), None
    )
    for name in ("ci_low", "ci_high", "diff_low", "diff_high", "p_vs_leader"):
        table[name] = np.nan
    table["vs_leader"] = ""
    for i in order:
        if preds.get(i) is None:
            continue
        y_true, y_pred = preds[i]
        index = bootstrap_index(len(y_true), n_boot, seed)
        table.loc[i, ["ci_low", "ci_high"]] = np.quantile(
            seed_mean_resamples(y_true, y_pred, index, num_classes), [0.025, 0.975]
        )
        if leader is None or table.at[i, "data"] != "same":
            continue
        if i == leader:
            table.at[i, "vs_leader"] = "leader"
            continue
        if not np.array_equal(y_true, preds[leader][0]):
            # Same data set, different evaluated images (e.g. data.max_eval): nothing to pair.
            table.at[i, "vs_leader"] = "n/a"
            if not any("n/a" in n for n in notes):
                notes.append("'n/a': tested on other images than the leader (e.g. data.max_eval), so not paired")
            continue
        low, high, p = paired_test(y_true, y_pred, preds[leader][1], index, num_classes)
        table.loc[i, ["diff_low", "diff_high", "p_vs_leader"]] = [low, high, p]
        table.at[i, "vs_leader"] = "tied" if p >= 0.05 else "worse" if high < 0 else "better"
    if leader is not None:
        notes.append(
            f"95% CIs: {n_boot} bootstrap resamples of the {len(preds[leader][0])} images (seed {seed}); "
            "'tied' = macro-F1 difference from the leader not significant at 5% (paired bootstrap)"
        )
    table = table.reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table
