"""The HTML leaderboard report: its content read back with an HTML parser, the `bench compare --html`
option, and the page as a real headless Chromium renders it (skipped only where no Chromium is installed)."""

import base64
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.compare import build_leaderboard
from bench.leaderboard_html import render_html, write_html
from bench.leaderboard_render import summary_rows
from tests.test_compare import log_run, predictions_with_accuracy

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The parts of the page the tests check: table rows (cell texts and the row's class), images, list
    items, and every attribute that could load something from elsewhere."""

    def __init__(self, text: str):
        super().__init__()
        self.rows, self.row_classes, self.images, self.notes, self.links = [], [], [], [], []
        self._cell = self._row = None
        self._in_li = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self._row = []
            self.row_classes.append(attrs.get("class", ""))
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "li":
            self._in_li = True
            self.notes.append("")
        self.links += [v for k, v in attrs.items() if k in ("src", "href") and not v.startswith("data:")]

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
        elif tag == "li":
            self._in_li = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._in_li:
            self.notes[-1] += data


@pytest.fixture
def board(tmp_path):
    log_run("lb", "resnet50", predictions_with_accuracy(0.80, 1), seed=0, tmp=tmp_path)
    log_run("lb", "resnet50", predictions_with_accuracy(0.78, 2), seed=1, tmp=tmp_path)
    log_run("lb", "baseline_cnn", predictions_with_accuracy(0.40, 4), passes=0.5, tmp=tmp_path)
    return build_leaderboard(["lb"], n_boot=50)


def test_the_report_holds_the_terminal_tables_cis_footnotes_and_three_plots(board):
    board.footnotes.append("a <script>alert(1)</script> & b")  # any text a run logged is shown, never run
    text = render_html(board, ["lb<&>"], generated=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    page = Page(text)
    assert "<title>bench leaderboard: lb&lt;&amp;&gt;</title>" in text and "2026-01-02 03:04 UTC" in text
    assert "<script>alert" not in text and page.notes[-1] == "a <script>alert(1)</script> & b"
    assert page.notes == board.footnotes
    headers, rows = summary_rows(board, wide=True)
    main = [r for r in page.rows if r and r[0] in ("#", "1", "2")]
    assert main[0] == headers[:-7] and "95% CI" in main[0] and "passes" in main[0]
    assert main[1:] == [row[:-7] for row in rows]  # the same cells as the terminal's wide table
    ci, passes = main[0].index("95% CI"), main[0].index("passes")
    assert main[1][1] == "resnet50+hybrid" and main[1][ci].startswith("0.") and main[2][passes] == "0.5!"
    assert page.row_classes[1] == "leader" and page.row_classes[2] == "worse"
    recall = [r for r in page.rows if r and r[0] == "config"][0]
    assert recall[1:] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert len(page.images) == 3 and page.links == []  # nothing to fetch: the file is the whole report
    for image in page.images:
        assert base64.b64decode(image["src"].removeprefix("data:image/png;base64,"))[:8] == PNG
    assert "<link" not in text and "url(" not in text and "@import" not in text


def test_compare_html_works_with_the_other_options_and_reports_an_unwritable_path(tmp_path):
    log_run("lb", "resnet50", predictions_with_accuracy(0.80, 1), tmp=tmp_path)
    log_run("lb", "xception", predictions_with_accuracy(0.70, 2), tmp=tmp_path)
    log_run("lb", "xception", predictions_with_accuracy(0.75, 3), head="mlp", tmp=tmp_path)
    report = tmp_path / "report.html"
    args = ["compare", "--experiment", "lb", "--bootstrap", "20", "--filter", "head=hybrid"]
    result = CliRunner().invoke(cli, [*args, "--format", "markdown", "--wide", "--html", str(report)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("| # | config") and f"wrote {report}" in result.output
    configs = [r[1] for r in Page(report.read_text()).rows if r and r[0].isdigit()]
    assert configs == ["resnet50+hybrid", "xception+hybrid"]  # the filter applies to the report too
    missing = tmp_path / "no-such-folder" / "report.html"
    result = CliRunner().invoke(cli, [*args, "--html", str(missing)])
    assert result.exit_code == 2
    last = result.output.splitlines()[-1]
    assert last.startswith(f"error: '{missing}': No such file or directory")


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None)


def browse(binary: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    command = [
        binary,
        "--headless",
        "--no-sandbox",  # tests may run as root (CI containers); the page is our own file
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,1600",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_the_report_renders_in_a_real_browser(board, tmp_path):
    binary = chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; `make test` tries that)")
    import matplotlib.image

    page = write_html(board, tmp_path / "report.html", ["lb"])
    dom = browse(binary, tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'data-images="3/3"' in dom  # the page's script ran after load and every plot decoded
    rendered = Page(dom)
    assert [r[1] for r in rendered.rows if r and r[0].isdigit()] == ["resnet50+hybrid", "baseline_cnn+hybrid"]
    shot = tmp_path / "report.png"
    browse(binary, tmp_path, f"--screenshot={shot}", page.as_uri())
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    inked = np.mean(pixels.min(axis=2) < 0.9)
    assert colours > 200 and inked > 0.03, (colours, inked)  # text, a table and plots, not a blank page
    # the plots' area (lower half) holds the plots' colours, not only the table's black on white
    lower = pixels[800:]
    assert np.mean(np.ptp(lower, axis=2) > 0.2) > 0.02
