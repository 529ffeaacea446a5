"""A leaderboard as one self-contained HTML page: the table with its CIs and footnotes, and the plots.

Everything is inline (CSS, PNGs as base64 data URIs, one small script), so the file can be mailed,
attached to an MLflow run or opened from a USB stick and still shows everything: no server, no network.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from bench.leaderboard_render import PANELS, leaderboard_figure, recall_rows, summary_rows

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 20px 0 8px; }
.meta { color: #555; margin: 0 0 16px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 7px; border-bottom: 1px solid #ddd; white-space: nowrap; text-align: right; }
th { background: #f0f3f7; position: sticky; top: 0; }
th.l, td.l { text-align: left; }
tr.leader td { background: #eaf5ea; font-weight: 600; }
tr.worse td { color: #666; }
tr.reported td { font-style: italic; color: #555; }
td.flag { color: #b00; font-weight: 600; }
ol.notes { color: #444; font-size: 12px; padding-left: 22px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; flex: 0 1 560px; }
.plots img { width: 100%; height: auto; border: 1px solid #eee; }
"""

# Marks the page once every plot has decoded, so a headless browser (the tests) can tell a page that
# renders from one that merely parses; a reader sees nothing of it.
READY_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", decoded + "/" + images.length);
});
"""


def figure_data_uri(fig, dpi: int = 100) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _row_class(row) -> str:
    if row.get("vs_leader") == "REPORTED":
        return "reported"
    return {"leader": "leader", "worse": "worse"}.get(row.get("vs_leader") or "", "")


def _table_html(headers: list[str], rows: list[list[str]], classes: list[str], left: int) -> str:
    """``left``: how many leading columns hold text (left-aligned); the rest are numbers."""

    def cell(tag: str, i: int, text: str) -> str:
        names = [n for n in ("l" if i < left else "", "flag" if tag == "td" and text.endswith("!") else "") if n]
        attr = f' class="{" ".join(names)}"' if names else ""
        return f"<{tag}{attr}>{escape(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "\n".join(
        f'<tr class="{css}">' + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
        for row, css in zip(rows, classes, strict=True)
    )
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def render_html(board, experiments: list[str], generated: datetime | None = None) -> str:
    """The whole page as a string; ``generated`` (default now, UTC) is printed under the title."""
    headers, rows = summary_rows(board, wide=True)
    # the wide view's cost columns stay; its per-class recalls get a table of their own, as in the terminal,
    # so the main table fits a laptop screen without scrolling
    keep = len(headers) - len(board.class_names)
    headers, rows = headers[:keep], [row[:keep] for row in rows]
    recall_headers, recall_cells = recall_rows(board)
    classes = [_row_class(r) for _, r in board.table.iterrows()]
    left = headers.index("n")  # "#", config and any recipe / data columns
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(experiments)
    n_runs = int(board.table["n_runs"].sum())
    figures = "\n".join(
        f'<figure><img alt="{escape(name)} plot" src="{figure_data_uri(leaderboard_figure(board, (name,)))}"></figure>'
        for name in PANELS
    )
    notes = "\n".join(f"<li>{escape(note)}</li>" for note in board.footnotes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bench leaderboard: {escape(names)}</title>
<style>{CSS}</style>
<script>{READY_SCRIPT}</script>
</head>
<body>
<h1>bench leaderboard</h1>
<p class="meta">experiment: <b>{escape(names)}</b> &middot; ranked on the {escape(board.split)} split &middot;
{len(board.table)} configurations, {n_runs} runs &middot; mean&plusmn;std over seeds &middot; {escape(when)}</p>
{_table_html(headers, rows, classes, left)}
<ol class="notes">
{notes}
</ol>
<h2>per-class recall ({escape(board.split)})</h2>
{_table_html(recall_headers, recall_cells, classes, 1)}
<h2>plots</h2>
<div class="plots">
{figures}
</div>
</body>
</html>
"""


def write_html(board, path: Path, experiments: list[str]) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8); an unwritable path raises the ``OSError``."""
    path = Path(path)
    path.write_text(render_html(board, experiments), encoding="utf-8")
    return path
