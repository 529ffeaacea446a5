"""Rendering a :class:`bench.compare.Leaderboard`: terminal table, markdown, CSV, JSON and plots."""

from __future__ import annotations

import math
from pathlib import Path

from bench import run_record as rec


def _num(value, fmt="{:.3f}") -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _pm(mean, std) -> str:
    text = _num(mean)
    return f"{text}±{_num(std, '{:.2f}')}" if text and _num(std) else text


def _passes(value) -> str:
    """Passes over the training split; under one is marked ``!`` (the footnotes say why)."""
    from bench.compare import UNDERTRAINED_PASSES

    text = _num(value, "{:.1f}")
    return f"{text}!" if text and value < UNDERTRAINED_PASSES else text


def summary_rows(board, wide: bool = False) -> tuple[list[str], list[list[str]]]:
    t = board.table
    measured = t[t["n_runs"] > 0]
    vary = [c for c in ("recipe", "data") if c in t.columns and measured[c].nunique() > 1]
    if "tta" in t.columns and measured["tta"].ne("none").any():  # a TTA row is always labelled as one
        vary.append("tta")
    # the temperature with the other secondary columns: the terminal table stays near 120 columns
    tempered = wide and "temperature" in t.columns and measured["temperature"].notna().any()
    headers = [
        "#",
        "config",
        *vary,
        "n",
        "macro-F1",
        "95% CI",
        "vs #1",
        "bal.acc",
        "kappa",
        "logloss",
        "ECE",
        *(["T"] if tempered else []),
        "params",
        "img/s",
        "passes",
    ]
    if wide:  # the terminal table stays within 120 columns; fit minutes are in the wide/markdown view
        headers += ["fit min", "p50 ms", "GFLOPs", *(c[:5] for c in board.class_names)]
    rows = []
    for _, r in t.iterrows():
        ci = f"{_num(r['ci_low'], '{:.2f}')}-{_num(r['ci_high'], '{:.2f}')}" if _num(r.get("ci_low")) else ""
        row = [
            str(r["rank"]),
            r["config"],
            *(str(r[c]) for c in vary),
            str(r["n_runs"]),
            _pm(r["macro_f1_mean"], r.get("macro_f1_std")),
            ci,
            r.get("vs_leader") or "",
            _num(r.get("balanced_accuracy_mean")),
            _num(r.get("kappa_mean")),
            _num(r.get("log_loss_mean")),
            _num(r.get("ece_mean")),
            *([_num(r.get("temperature"), "{:.2f}")] if tempered else []),
            _num(r.get(rec.PARAMS_TOTAL, math.nan) / 1e6, "{:.1f}M"),
            _num(r.get(rec.TRAIN_IMAGES_PER_SECOND), "{:.0f}"),
            _passes(r.get(rec.TRAIN_PASSES, math.nan)),
        ]
        if wide:
            row += [
                _num(r.get(rec.FIT_SECONDS, math.nan) / 60, "{:.1f}"),
                _num(r.get(rec.LATENCY_P50), "{:.1f}"),
                _num(r.get(rec.FLOPS_PER_IMAGE, math.nan) / 1e9, "{:.3f}"),
            ]
            row += [_num(r.get(f"recall_{c}_mean"), "{:.2f}") for c in board.class_names]
        rows.append(row)
    return headers, rows


def recall_rows(board) -> tuple[list[str], list[list[str]]]:
    headers = ["config", *board.class_names]
    rows = [
        [r["config"], *(_num(r.get(f"recall_{c}_mean"), "{:.3f}") for c in board.class_names)]
        for _, r in board.table.iterrows()
    ]
    return headers, rows


def render_terminal(board, wide: bool = False) -> str:
    from bench.reports import text_table as _table

    headers, rows = summary_rows(board, wide)
    parts = [
        f"leaderboard ({board.split} split, sorted; mean±std over seeds)",
        _table(headers, rows, "ll" + "r" * (len(headers) - 2)),
    ]
    if not wide:
        rh, rr = recall_rows(board)
        parts += ["", f"per-class recall ({board.split})", _table(rh, rr)]
    parts += [""] + [f"[{i + 1}] {note}" for i, note in enumerate(board.footnotes)]
    return "\n".join(parts)


def render_markdown(board) -> str:
    headers, rows = summary_rows(board, wide=True)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [""] + [f"{i + 1}. {note}" for i, note in enumerate(board.footnotes)]
    return "\n".join(lines) + "\n"


def render(board, fmt: str, wide: bool = False) -> str:
    if fmt == "markdown":
        return render_markdown(board)
    if fmt == "csv":
        return board.table.to_csv(index=False)
    if fmt == "json":
        return board.table.to_json(orient="records", indent=2)
    return render_terminal(board, wide)


def _cost_panel(ax, board) -> None:
    """Macro-F1 against parameters. One model still gets a labelled point on a readable axis (a lone point
    on a log axis used to leave what looked like an empty panel), and runs without a logged parameter count
    say so instead of leaving the axis blank."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    t = board.table
    cost = t[rec.PARAMS_TOTAL] if rec.PARAMS_TOTAL in t.columns else None
    ok = (cost.notna() & t["macro_f1_mean"].notna()) if cost is not None else None
    ax.set(title="at what cost")
    if ok is None or not ok.any():
        ax.text(0.5, 0.5, "no parameter counts logged", transform=ax.transAxes, ha="center", color="gray")
        ax.set(xticks=[], yticks=[])
        return
    x, y = cost[ok].to_numpy(float) / 1e6, t.loc[ok, "macro_f1_mean"].to_numpy(float)
    ax.scatter(x, y, s=40, zorder=3)
    placed: list[tuple[float, float]] = []
    for name, xi, yi in zip(t.loc[ok, "config"], x, y, strict=True):
        # heads on one backbone share its size: stack the labels of near-coincident points
        near = sum(abs(np.log(xi / px)) < 0.3 and abs(yi - py) < 0.03 for px, py in placed)
        placed.append((xi, yi))
        ax.annotate(name, (xi, yi), xytext=(5, 4 - 10 * near), textcoords="offset points", fontsize=8)
    # Limits from the data with a margin: with one model (or all of one size) autoscaling collapses.
    ax.set_xscale("log")
    ax.set_xlim(x.min() / 3, x.max() * 3)
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 0.5, 1, 2: a lone point still gets ticks
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # not 5x10^-1
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(max(0.0, np.floor((y.min() - 0.05) * 10) / 10), min(1.0, np.ceil((y.max() + 0.05) * 10) / 10))
    ax.grid(alpha=0.3)
    ax.set(xlabel="parameters (millions, log)", ylabel="macro-F1")


def _ci_panel(ax, board) -> None:
    import numpy as np

    t = board.table
    y = np.arange(len(t))[::-1]
    mean = t["macro_f1_mean"].to_numpy(float)
    low = np.clip(np.nan_to_num(mean - t["ci_low"].to_numpy(float)), 0, None)
    high = np.clip(np.nan_to_num(t["ci_high"].to_numpy(float) - mean), 0, None)
    ax.errorbar(mean, y, xerr=[low, high], fmt="o", capsize=4)
    ax.set(
        yticks=y,
        yticklabels=t["config"],
        ylim=(-0.7, len(t) - 0.3),
        xlabel=f"{board.split} macro-F1 (95% bootstrap CI)",
        title="which backbone wins",
    )
    ax.grid(axis="x", alpha=0.3)


def _recall_panel(ax, board) -> None:
    import numpy as np

    t = board.table
    names = board.class_names
    recalls = t[[f"recall_{c}_mean" for c in names]].to_numpy(float)
    ax.imshow(recalls, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set(xticks=range(len(names)), yticks=range(len(t)), title="per-class recall")
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(t["config"])
    for (i, j), v in np.ndenumerate(recalls):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.5 else "black")


PANELS = {"ci": _ci_panel, "cost": _cost_panel, "recall": _recall_panel}
"""The leaderboard plot's panels by name: the PNG puts them side by side, the HTML report one per image."""


def leaderboard_figure(board, panels=tuple(PANELS), width: float = 6.0):
    """A matplotlib Figure of the named :data:`PANELS` side by side, each ``width`` inches wide (the caller
    saves and closes it): which configuration wins with its CI, at what cost, and per-class recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = board.table
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), max(4, 0.5 * len(t) + 2)), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        PANELS[name](ax, board)
    fig.tight_layout()
    return fig


def plot(board, path: Path) -> Path:
    """The :func:`leaderboard_figure` as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    fig = leaderboard_figure(board)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
