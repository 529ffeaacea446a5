"""``bench explain``'s HTML page: every PNG it wrote, embedded, with what each shows.

Self-contained like the leaderboard report (:mod:`bench.leaderboard_html`): CSS inline and images as
base64 data URIs, so the one file can be mailed or attached to a run and still shows everything."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 20px 0 8px; }
.meta { color: #555; margin: 0 0 16px; max-width: 70em; }
.cards { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #444; max-width: 40em; }
"""


@dataclass(frozen=True)
class Figure:
    """A PNG on the page, in ``section``, with a caption."""

    section: str
    path: Path
    caption: str


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render_page(title: str, notes: list[str], figures: list[Figure], generated: datetime | None = None) -> str:
    """The page: ``title``, the ``notes`` (what the maps mean, the model), then each section's figures in
    the order given."""
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    sections: dict[str, list[Figure]] = {}
    for fig in figures:
        sections.setdefault(fig.section, []).append(fig)
    body = "\n".join(
        f'<h2>{escape(name)}</h2>\n<div class="cards">\n'
        + "\n".join(
            f'<figure><img alt="{escape(f.caption)}" src="{data_uri(f.path)}">'
            f"<figcaption>{escape(f.caption)}</figcaption></figure>"
            for f in items
        )
        + "\n</div>"
        for name, items in sections.items()
    )
    meta = "".join(f'<p class="meta">{escape(n)}</p>\n' for n in [*notes, f"written {when}"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
{meta}{body}
</body>
</html>
"""


def write_page(path: Path, title: str, notes: list[str], figures: list[Figure]) -> Path:
    """Write :func:`render_page` to ``path`` (UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(title, notes, figures), encoding="utf-8")
    return path
