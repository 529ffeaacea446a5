"""benchmarks/plot_leaderboard.py: a leaderboard's plot drawn from its JSON or CSV file, with bench's own figure."""

import json

import pandas as pd
import pytest

from tests.conftest import BENCHMARKS, load_benchmark

ROWS = [
    {
        "rank": 1,
        "config": "baseline_cnn+hybrid",
        "n_runs": 3,
        "macro_f1_mean": 0.596,
        "macro_f1_std": 0.01,
        "ci_low": 0.58,
        "ci_high": 0.61,
        "vs_leader": "leader",
        "params_total": 1100000,
    },
    {
        "rank": 2,
        "config": "mini_xception+hybrid",
        "n_runs": 1,
        "macro_f1_mean": 0.535,
        "macro_f1_std": None,
        "ci_low": 0.52,
        "ci_high": 0.55,
        "vs_leader": "worse",
        "params_total": 700000,
    },
    {
        "rank": "-",
        "config": "resnet50+hybrid (paper)",
        "n_runs": 0,
        "macro_f1_mean": 0.574,
        "ci_low": None,
        "ci_high": None,
        "vs_leader": "REPORTED",
        "params_total": None,
    },
]


@pytest.fixture(scope="module")
def plot_leaderboard():
    return load_benchmark("plot_leaderboard")


def _png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_json_file_is_drawn_and_what_was_drawn_printed_as_json(plot_leaderboard, tmp_path, capsys):
    source, out = tmp_path / "board.json", tmp_path / "board.png"
    source.write_text(json.dumps(ROWS))
    result = plot_leaderboard.main([str(source), "--out", str(out)])
    assert _png(out)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert result["rows"] == 3 and result["panels"] == ["ci", "cost"]  # no per-class columns: no recall panel


def test_a_csv_file_with_per_class_recall_gets_the_recall_panel(plot_leaderboard, tmp_path):
    rows = [{**r, "recall_happy_mean": 0.8, "recall_sad_mean": 0.5} for r in ROWS]
    source, out = tmp_path / "board.csv", tmp_path / "board.png"
    pd.DataFrame(rows).to_csv(source, index=False)
    result = plot_leaderboard.draw(source, out)
    assert _png(out) and result["panels"] == ["ci", "cost", "recall"]
    assert plot_leaderboard.class_names(plot_leaderboard.read_rows(source)) == ("happy", "sad")


@pytest.mark.parametrize(
    "content, message",
    [({"rows": ROWS}, "expected a list of row records"), ([{"config": "x"}], "no macro_f1_mean column")],
)
def test_a_file_that_is_not_a_leaderboard_is_refused_with_what_was_expected(
    plot_leaderboard, tmp_path, content, message
):
    source = tmp_path / "board.json"
    source.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        plot_leaderboard.read_rows(source)


@pytest.mark.parametrize("path", sorted((BENCHMARKS / "leaderboards").glob("*.json")), ids=lambda p: p.name)
def test_every_committed_leaderboard_file_draws(plot_leaderboard, tmp_path, path):
    result = plot_leaderboard.draw(path, tmp_path / "board.png")
    assert result["rows"] == len(json.loads(path.read_text()))
