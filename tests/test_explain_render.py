"""bench/explain/render.py and page.py: overlays, PNG panels and grids, the self-contained page."""

import base64
import re

import numpy as np

from bench.explain.page import Figure, render_page, write_page
from bench.explain.render import PANEL, class_grid, face_panel, image_grid, overlay


def face():
    return np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (48, 1))


def test_overlay_colours_where_the_map_is_high_and_leaves_the_face_alone_without_one():
    plain = overlay(face(), None)
    assert plain.shape == (PANEL, PANEL, 3) and plain.dtype == np.uint8
    assert np.array_equal(plain[..., 0], plain[..., 2])  # gray
    heat = np.zeros((6, 6), np.float32)
    heat[0, 0] = 1.0
    hot = overlay(np.full((48, 48), 128, np.uint8), heat)
    corner, far = hot[:10, :10].astype(int), hot[-10:, -10:].astype(int)
    assert (corner[..., 0] - corner[..., 2]).mean() > 50  # jet: red where the map peaks
    assert (far[..., 2] - far[..., 0]).mean() > 20  # blue where it is zero
    # a zero map is one colour whatever its grid
    assert np.array_equal(overlay(face(), np.zeros((6, 6))), overlay(face(), np.zeros((3, 3))))


def test_panels_and_grids_are_written_as_png(tmp_path):
    heat = np.random.default_rng(0).random((6, 6))
    paths = [
        face_panel(tmp_path / "a" / "face.png", face(), [("Grad-CAM", heat), ("attention", heat)], "happy 90%"),
        class_grid(
            tmp_path / "grid.png",
            [
                {"label": "happy (3)", "face": face(), "Grad-CAM": heat, "attention": None},
                {"label": "fear (0)", "face": None},
            ],
            ["Grad-CAM", "attention"],
            "per class",
        ),
        image_grid(
            tmp_path / "kernels.png", np.random.default_rng(1).random((10, 3, 3)), [str(i) for i in range(10)], "k"
        ),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_embeds_every_image_and_reaches_for_nothing_outside(tmp_path):
    png = face_panel(tmp_path / "f.png", face(), [("Grad-CAM", np.ones((2, 2)))], "t")
    figures = [Figure("faces", png, "a.png <b>: happy"), Figure("per class", png, "grid")]
    html = render_page("bench explain: m", ["note & more"], figures)
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert base64.b64decode(sources[0].split(",", 1)[1]) == png.read_bytes()
    assert "<h2>faces</h2>" in html and "<h2>per class</h2>" in html
    assert "a.png &lt;b&gt;: happy" in html and "note &amp; more" in html  # escaped
    assert not re.search(r'(href|src)="(http|/|\.)', html)
    written = write_page(tmp_path / "out" / "index.html", "t", [], figures)
    assert written.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
