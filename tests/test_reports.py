"""bench.reports' plain-text table, which every terminal report (data, catalog, leaderboard, predict,
explain) is drawn with."""

from bench.reports import text_table


def test_text_table_widens_columns_to_their_widest_cell_and_aligns_numbers_right():
    lines = text_table(["name", "n"], [["baseline_cnn", 3], ["x", 12]]).splitlines()
    assert lines == ["name           n", "------------  --", "baseline_cnn   3", "x             12"]


def test_text_table_takes_one_alignment_letter_per_column_and_draws_headers_without_rows():
    assert text_table(["a", "b"], [["1", "2"]], align="rl").splitlines()[2] == "1  2"
    assert text_table(["left", "right"], [], align="lr").splitlines() == ["left  right", "----  -----"]
