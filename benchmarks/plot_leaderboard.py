"""A leaderboard's plot drawn from its machine-readable file, not from the tracking store.

    python benchmarks/plot_leaderboard.py benchmarks/leaderboards/fer2013_cpu_v5.json --out leaderboard.png

The file is what ``bench compare ... --format json`` (a list of row records) or ``--format csv`` writes, so
a leaderboard can be redrawn, diffed and read by other tools without the MLflow store that held its runs.
The figure is bench's own (:func:`bench.leaderboard_render.leaderboard_figure`, what ``bench compare --plot``
saves): which configuration wins with its 95 % CI, at what cost, and per-class recall; the recall panel only
when the file has per-class columns (``recall_<class>_mean``), since older tables were kept without them.
Prints one JSON line: the PNG written, the rows drawn and the panels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RECALL_PREFIX, RECALL_SUFFIX = "recall_", "_mean"


def read_rows(path: Path):
    """The leaderboard table of a ``.json`` (records) or ``.csv`` file, as a DataFrame."""
    import pandas as pd

    if path.suffix == ".csv":
        table = pd.read_csv(path)
    else:
        records = json.loads(path.read_text())
        if not isinstance(records, list):
            kind = type(records).__name__
            raise ValueError(f"{path}: expected a list of row records (bench compare --format json); got a {kind}")
        table = pd.DataFrame(records)
    missing = [c for c in ("config", "macro_f1_mean") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} column; expected bench compare's JSON or CSV columns")
    for column in ("ci_low", "ci_high"):  # a row without an interval draws as a point
        if column not in table.columns:
            table[column] = float("nan")
    return table


def class_names(table) -> tuple[str, ...]:
    """The classes with a per-class recall column, in the file's order."""
    return tuple(
        c[len(RECALL_PREFIX) : -len(RECALL_SUFFIX)]
        for c in table.columns
        if c.startswith(RECALL_PREFIX) and c.endswith(RECALL_SUFFIX)
    )


def draw(path: Path, out: Path, split: str = "test") -> dict:
    """Draw the leaderboard file at ``path`` into the PNG ``out``; returns what was drawn."""
    import matplotlib.pyplot as plt

    from bench.compare import Leaderboard
    from bench.leaderboard_render import leaderboard_figure

    table = read_rows(path)
    names = class_names(table)
    panels = ("ci", "cost", "recall") if names else ("ci", "cost")
    board = Leaderboard(table, split=split, **({"class_names": names} if names else {}))
    fig = leaderboard_figure(board, panels=panels)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"plot": str(out), "rows": len(table), "panels": list(panels), "source": str(path)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="bench compare's --format json or csv output")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--split", default="test", choices=["test", "val"], help="the split the file ranks on")
    args = parser.parse_args(argv)
    result = draw(args.file, args.out, args.split)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
