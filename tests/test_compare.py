"""bench compare against a real MLflow store in a temporary folder, with runs whose predictions the
tests choose, so intervals and tie marks are checked against independent computations."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import f1_score

from bench import tracking as trk
from bench.bootstrap import bootstrap_index, macro_f1_resamples
from bench.cli import cli
from bench.compare import build_leaderboard
from bench.data.ferplus import FERPLUS_CLASS_NAMES
from bench.errors import BenchError
from bench.metrics import evaluate

N = 300
Y_TRUE = np.random.default_rng(0).integers(0, 7, N)


def predictions_with_accuracy(accuracy: float, seed: int) -> np.ndarray:
    """Probabilities whose argmax is right on a chosen fraction of the images."""
    rng = np.random.default_rng(seed)
    pred = Y_TRUE.copy()
    wrong = rng.choice(N, int(round((1 - accuracy) * N)), replace=False)
    pred[wrong] = (Y_TRUE[wrong] + rng.integers(1, 7, len(wrong))) % 7
    prob = np.full((N, 7), 0.05)
    prob[np.arange(N), pred] = 0.7
    return prob / prob.sum(1, keepdims=True)


def log_run(
    experiment,
    backbone,
    prob,
    *,
    seed=0,
    head="hybrid",
    status="FINISHED",
    fingerprint="fp-a",
    with_predictions=True,
    recipe_hash="h1",
    passes=3.0,
    label_set=None,
    test_fingerprint=None,
    params=None,
    tmp,
):
    uri = trk.connect(None)
    exp = trk.ensure_experiment(experiment, uri)
    run = trk.TrackedRun(exp, run_name=f"{backbone}-{seed}")
    run.__enter__()
    run.params(
        {
            "backbone": backbone,
            "head": head,
            "recipe": "cpu",
            "recipe_hash": recipe_hash,
            "weights": "none",
            "image_size": 48,
            "seed": seed,
            "data_fingerprint": fingerprint,
        }
    )
    if params:  # the logged recipe fields (recipe.*)
        run.params(params)
    if test_fingerprint is not None:  # runs logged before these params have neither
        run.params({"test_fingerprint": test_fingerprint, "val_fingerprint": test_fingerprint})
    names = FERPLUS_CLASS_NAMES[: prob.shape[1]]
    if label_set is not None:
        run.set_tags({"bench.label_set": label_set})
        run.params({"class_names": ",".join(names)})
    metrics = evaluate(Y_TRUE, prob, names)
    run.metrics({f"test_{k}": v for k, v in metrics.items()} | {f"val_{k}": v for k, v in metrics.items()})
    run.metrics({"params_total": 1e6, "fit_seconds": 60.0, "train_images_per_second": 500.0, "train_passes": passes})
    if with_predictions:
        path = Path(tmp) / f"{backbone}-{seed}" / "predictions.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, test_y_true=Y_TRUE, test_y_prob=prob, val_y_true=Y_TRUE, val_y_prob=prob)
        run.artifact(path)
    if status == "FINISHED":
        run.__exit__(None, None, None)
    else:
        run.__exit__(RuntimeError, RuntimeError("boom"), None)
    return run.run_id


@pytest.fixture
def store(tmp_path):
    good = predictions_with_accuracy(0.80, 1)
    log_run("lb", "resnet50", good, seed=0, tmp=tmp_path)
    log_run("lb", "resnet50", predictions_with_accuracy(0.78, 2), seed=1, tmp=tmp_path)
    log_run("lb", "xception", predictions_with_accuracy(0.77, 3), tmp=tmp_path)  # close to the leader
    log_run("lb", "baseline_cnn", predictions_with_accuracy(0.40, 4), tmp=tmp_path)  # clearly worse
    log_run("lb", "mobilenet_v3_small", good, status="FAILED", tmp=tmp_path)
    return tmp_path


def test_vectorized_bootstrap_equals_scikit_learn():
    pred = predictions_with_accuracy(0.6, 9).argmax(1)
    index = bootstrap_index(N, 50, seed=3)
    expected = [f1_score(Y_TRUE[i], pred[i], labels=range(7), average="macro", zero_division=0) for i in index]
    np.testing.assert_allclose(macro_f1_resamples(Y_TRUE, pred, index), expected, atol=1e-12)


def test_leaderboard_aggregates_seeds_ranks_and_marks_ties(store):
    board = build_leaderboard(["lb"], n_boot=500, seed=0)
    t = board.table
    assert list(t["config"]) == ["resnet50+hybrid", "xception+hybrid", "baseline_cnn+hybrid"]
    top = t.iloc[0]
    assert top["n_runs"] == 2 and top["vs_leader"] == "leader"
    f1s = [evaluate(Y_TRUE, predictions_with_accuracy(a, s))["macro_f1"] for a, s in ((0.80, 1), (0.78, 2))]
    assert top["macro_f1_mean"] == pytest.approx(np.mean(f1s)) and top["macro_f1_std"] == pytest.approx(
        np.std(f1s, ddof=1)
    )
    # Independent CI of the shown statistic, the mean over seeds: each seed's sklearn F1 on the same
    # resamples, averaged per resample. It brackets the shown mean (a pooled ensemble's would not).
    seeds = [predictions_with_accuracy(0.80, 1).argmax(1), predictions_with_accuracy(0.78, 2).argmax(1)]
    index = bootstrap_index(N, 500, seed=0)
    scores = [
        np.mean([f1_score(Y_TRUE[i], p[i], labels=range(7), average="macro", zero_division=0) for p in seeds])
        for i in index
    ]
    assert top["ci_low"] == pytest.approx(np.quantile(scores, 0.025))
    assert top["ci_high"] == pytest.approx(np.quantile(scores, 0.975))
    assert top["ci_low"] < top["macro_f1_mean"] < top["ci_high"]
    assert t.iloc[1]["vs_leader"] == "tied" and t.iloc[1]["p_vs_leader"] >= 0.05
    assert t.iloc[2]["vs_leader"] == "worse" and t.iloc[2]["p_vs_leader"] < 0.05 and t.iloc[2]["diff_high"] < 0
    assert "mobilenet_v3_small+hybrid" not in set(t["config"])  # FAILED runs are excluded by default


def test_failed_runs_included_with_all_and_filters(store):
    assert "mobilenet_v3_small+hybrid [FAILED]" in set(
        build_leaderboard(["lb"], include_all=True, n_boot=20).table["config"]
    )
    log_run("lb", "xception", predictions_with_accuracy(0.2, 5), seed=1, status="FAILED", tmp=store)
    board = build_leaderboard(["lb"], include_all=True, n_boot=20)
    rows = board.table.set_index("config")
    assert rows.loc["xception+hybrid", "n_runs"] == 1 and rows.loc["xception+hybrid [FAILED]", "n_runs"] == 1
    assert rows.loc["xception+hybrid", "macro_f1_mean"] > 0.5  # the failed run is not in the mean
    # The FAILED mobilenet run scores as high as the leader's best seed, yet only finished rows can lead.
    assert rows.loc["mobilenet_v3_small+hybrid [FAILED]", "vs_leader"] != "leader"
    assert rows.loc["resnet50+hybrid", "vs_leader"] == "leader"
    assert any("kept out of the finished runs' rows" in note for note in board.footnotes)
    only = build_leaderboard(["lb"], filters={"backbone": "xception"}, n_boot=20).table
    assert list(only["config"]) == ["xception+hybrid"]
    with pytest.raises(BenchError, match="no param or tag 'colour'"):
        build_leaderboard(["lb"], filters={"colour": "red"}, n_boot=20)


def test_sorting_and_val_metric(store):
    by_loss = build_leaderboard(["lb"], sort="log_loss", n_boot=20).table
    assert by_loss["log_loss_mean"].is_monotonic_increasing
    assert build_leaderboard(["lb"], split="val", n_boot=20).table.iloc[0]["config"] == "resnet50+hybrid"
    with pytest.raises(BenchError, match="--sort colour"):
        build_leaderboard(["lb"], sort="colour", n_boot=20)


def test_mixed_fingerprints_are_flagged_and_missing_predictions_footnoted(tmp_path):
    log_run("mix", "resnet50", predictions_with_accuracy(0.7, 1), tmp=tmp_path)
    log_run("mix", "xception", predictions_with_accuracy(0.7, 2), tmp=tmp_path)
    log_run("mix", "baseline_cnn", predictions_with_accuracy(0.9, 3), fingerprint="fp-b", tmp=tmp_path)
    log_run("mix", "mobilenet_v3_small", predictions_with_accuracy(0.5, 4), with_predictions=False, tmp=tmp_path)
    board = build_leaderboard(["mix"], n_boot=50)
    t = board.table.set_index("config")
    assert t.loc["baseline_cnn+hybrid", "data"] == "DIFFERENT" and t.loc["baseline_cnn+hybrid", "vs_leader"] == ""
    assert t.loc["resnet50+hybrid", "vs_leader"] == "leader"  # the leader comes from the majority data
    assert np.isnan(t.loc["mobilenet_v3_small+hybrid", "ci_low"])
    assert any("predictions.npz missing" in n for n in board.footnotes)
    assert any("DIFFERENT" in n for n in board.footnotes)


def test_runs_scored_on_the_same_images_are_paired_whatever_data_they_trained_on(tmp_path):
    # FER+ majority vs crossentropy: other training rows and targets (data fingerprints), same test split
    log_run("fp", "resnet50", predictions_with_accuracy(0.7, 1), test_fingerprint="t-a", tmp=tmp_path)
    soft = {"fingerprint": "fp-b", "recipe_hash": "h2", "test_fingerprint": "t-a"}
    log_run("fp", "xception", predictions_with_accuracy(0.6, 2), **soft, tmp=tmp_path)
    log_run("fp", "baseline_cnn", predictions_with_accuracy(0.9, 3), test_fingerprint="t-b", tmp=tmp_path)
    for split in ("test", "val"):
        board = build_leaderboard(["fp"], split=split, n_boot=50)
        t = board.table.set_index("config")
        assert t.loc["xception+hybrid", "data"] == "same" and t.loc["resnet50+hybrid", "vs_leader"] == "leader"
        assert t.loc["xception+hybrid", "vs_leader"] in ("tied", "worse", "better")
        assert not np.isnan(t.loc["xception+hybrid", "p_vs_leader"])
        assert t.loc["baseline_cnn+hybrid", "data"] == "DIFFERENT" and t.loc["baseline_cnn+hybrid", "vs_leader"] == ""
        assert any(f"another {split}_fingerprint" in n for n in board.footnotes)


def test_a_row_with_a_run_logged_before_the_test_fingerprint_falls_back_to_the_data_fingerprint(tmp_path):
    log_run("old", "resnet50", predictions_with_accuracy(0.7, 1), test_fingerprint="t-a", tmp=tmp_path)
    log_run("old", "resnet50", predictions_with_accuracy(0.7, 5), seed=1, test_fingerprint="t-a", tmp=tmp_path)
    log_run("old", "xception", predictions_with_accuracy(0.6, 2), test_fingerprint="t-b", tmp=tmp_path)
    log_run("old", "xception", predictions_with_accuracy(0.6, 6), seed=1, tmp=tmp_path)
    log_run("old", "baseline_cnn", predictions_with_accuracy(0.5, 3), fingerprint="fp-b", tmp=tmp_path)
    log_run("old", "baseline_cnn", predictions_with_accuracy(0.5, 4), seed=1, fingerprint="fp-b", tmp=tmp_path)
    t = build_leaderboard(["old"], n_boot=20).table.set_index("config")
    # xception's seed 1 lacks the param, so its row compares data fingerprints (fp-a, the majority's)
    assert t["data"].to_dict() == {
        "resnet50+hybrid": "same",
        "xception+hybrid": "same",
        "baseline_cnn+hybrid": "DIFFERENT",
    }


def test_overridden_recipes_are_separate_rows_and_notes_say_what_each_changed(tmp_path):
    fields = {"recipe.run.seed": 0, "recipe.data.batch_size": 64, "recipe.model.head": "hybrid"}
    log_run("ovr", "resnet50", predictions_with_accuracy(0.7, 1), recipe_hash="aaaaaaa", tmp=tmp_path, params=fields)
    fields |= {
        "recipe.run.seed": 1,  # not an override: seeds pool
        "recipe.run.budget_minutes": 30.0,
        "recipe.model.head_options.hybrid.formulation": "matmul",  # speed only: hashes alike
        "recipe.model.batchnorm_stats": "moving",  # a field the first run predates, at its default
    }
    log_run("ovr", "resnet50", predictions_with_accuracy(0.6, 2), recipe_hash="bbbbbbb", tmp=tmp_path, params=fields)
    fields |= {"recipe.model.head": "hybrid"}  # an older run: the recipe's default, not the head it trained
    prob = predictions_with_accuracy(0.6, 3)
    log_run("ovr", "resnet50", prob, head="mlp", recipe_hash="ccccccc", tmp=tmp_path, params=fields)
    board = build_leaderboard(["ovr"], n_boot=20)
    assert len(board.table) == 3 and set(board.table["recipe"]) == {"cpu#aaaaaa", "cpu#bbbbbb", "cpu#cccccc"}
    # the head comes from the run's own record (its params.head), which wins over a logged recipe default
    # only what the hash covers and differs is named; a field a run lacks shows as "-"
    assert "cpu#aaaaaa: model.head=hybrid, run.budget_minutes=-" in board.footnotes
    assert "cpu#bbbbbb: model.head=hybrid, run.budget_minutes=30.0" in board.footnotes
    assert "cpu#cccccc: model.head=mlp, run.budget_minutes=30.0" in board.footnotes


def test_runs_hashed_apart_only_by_a_speed_setting_say_so(tmp_path):
    """Runs logged with model.batchnorm = "fused" before the kernel left the hash keep their own hash."""
    fields = {"recipe.data.batch_size": 64, "recipe.model.batchnorm": "fused"}
    log_run("kern", "resnet50", predictions_with_accuracy(0.7, 1), recipe_hash="ddddddd", tmp=tmp_path, params=fields)
    fields |= {"recipe.model.batchnorm": "auto"}
    log_run("kern", "resnet50", predictions_with_accuracy(0.6, 2), recipe_hash="eeeeeee", tmp=tmp_path, params=fields)
    older = {"recipe.data.batch_size": 64}  # logged before model.batchnorm existed
    log_run("kern", "resnet50", predictions_with_accuracy(0.5, 3), recipe_hash="fffffff", tmp=tmp_path, params=older)
    notes = build_leaderboard(["kern"], n_boot=20).footnotes
    assert "cpu#ffffff: no recipe field differs (older runs; speed settings: none logged)" in notes
    assert any(n.startswith("cpu#dddddd: no recipe field differs") and "model.batchnorm=fused" in n for n in notes)
    assert any(n.startswith("cpu#eeeeee: no recipe field differs") and "model.batchnorm=auto" in n for n in notes)


def test_empty_and_unknown_experiments_are_clear_errors():
    trk.ensure_experiment("empty", trk.connect(None))
    with pytest.raises(BenchError, match="no finished runs"):
        build_leaderboard(["empty"])
    with pytest.raises(BenchError, match="no experiment 'nope'"):
        build_leaderboard(["nope"])


def test_cli_formats_plot_reference_and_log(store, tmp_path):
    runner = CliRunner()
    table = runner.invoke(cli, ["compare", "--experiment", "lb", "--bootstrap", "50", "--reference", "paper"])
    assert table.exit_code == 0, table.output
    assert "per-class recall" in table.output and "REPORTED" in table.output and "(paper)" in table.output
    assert max(len(line) for line in table.output.splitlines() if not line.startswith("[")) <= 120
    md = runner.invoke(cli, ["compare", "--experiment", "lb", "--bootstrap", "50", "--format", "markdown"]).output
    assert md.startswith("| # | config") and "resnet50+hybrid" in md
    rows = json.loads(
        runner.invoke(cli, ["compare", "--experiment", "lb", "--bootstrap", "50", "--format", "json"]).output
    )
    assert rows[0]["config"] == "resnet50+hybrid"
    out = tmp_path / "lb.csv"
    png = tmp_path / "lb.png"
    result = runner.invoke(
        cli,
        [
            "compare",
            "--experiment",
            "lb",
            "--bootstrap",
            "50",
            "--format",
            "csv",
            "--out",
            str(out),
            "--plot",
            str(png),
            "--log",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("rank,config")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "logged the leaderboard as run" in result.output
    again = build_leaderboard(["lb"], n_boot=20).table  # the leaderboard run itself is not a configuration
    assert len(again) == 3


def test_compare_without_experiment_shows_the_one_run_last(store):
    log_run("newer", "resnet50", predictions_with_accuracy(0.7, 6), tmp=store)
    result = CliRunner().invoke(cli, ["compare", "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert "experiment: newer (the one run last" in result.output and "resnet50+hybrid" in result.output


def test_cli_errors_are_one_line():
    trk.ensure_experiment("other", trk.connect(None))
    result = CliRunner().invoke(cli, ["compare", "--experiment", "nope"])
    assert result.exit_code == 2 and result.output.startswith("error: no experiment 'nope'")
    result = CliRunner().invoke(cli, ["compare", "--experiment", "x", "--filter", "oops"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_rows_tested_on_other_images_are_not_paired_with_the_leader(tmp_path):
    log_run("sub", "resnet50", predictions_with_accuracy(0.8, 1), tmp=tmp_path)
    uri = trk.connect(None)
    run = trk.TrackedRun(trk.ensure_experiment("sub", uri), run_name="subset")
    with run:
        run.params(
            {
                "backbone": "xception",
                "head": "hybrid",
                "recipe": "smoke",
                "recipe_hash": "h2",
                "weights": "none",
                "image_size": 71,
                "seed": 0,
                "data_fingerprint": "fp-a",
            }
        )
        run.metrics({"test_macro_f1": 0.5})
        path = tmp_path / "subset" / "predictions.npz"
        path.parent.mkdir()
        np.savez(
            path,
            test_y_true=Y_TRUE[:50],
            test_y_prob=predictions_with_accuracy(0.5, 2)[:50],
            val_y_true=Y_TRUE[:50],
            val_y_prob=predictions_with_accuracy(0.5, 2)[:50],
        )
        run.artifact(path)
    board = build_leaderboard(["sub"], n_boot=50)
    t = board.table.set_index("config")
    assert t.loc["xception+hybrid", "vs_leader"] == "n/a" and not np.isnan(t.loc["xception+hybrid", "ci_low"])
    assert any("other images" in n for n in board.footnotes)


def test_under_trained_rows_show_their_passes_and_are_flagged(tmp_path):
    from bench.leaderboard_render import render_terminal

    log_run("passes", "resnet50", predictions_with_accuracy(0.5, 1), passes=0.6, tmp=tmp_path)
    log_run("passes", "baseline_cnn", predictions_with_accuracy(0.7, 2), passes=4.0, tmp=tmp_path)
    board = build_leaderboard(["passes"], n_boot=20)
    passes = dict(zip(board.table["config"], board.table["train_passes"], strict=True))
    assert passes == {"baseline_cnn+hybrid": 4.0, "resnet50+hybrid": 0.6}
    flagged = [n for n in board.footnotes if "under-trained" in n]
    assert len(flagged) == 1 and flagged[0].startswith("resnet50+hybrid") and "0.60 passes" in flagged[0]
    text = render_terminal(board)
    assert "passes" in text and "0.6!" in text and "4.0!" not in text


def test_compare_never_creates_a_store_and_fails_fast_on_a_broken_one(tmp_path):
    """A read-only command: a typo'd --tracking-uri (or no ./mlruns yet) is an error, not a new store."""
    import time

    runner = CliRunner()
    for uri in (f"sqlite:///{tmp_path}/typo/mlflow.db", f"sqlite:///{tmp_path}/mlflw.db", None):
        result = runner.invoke(cli, ["compare", "--experiment", "x"] + (["--tracking-uri", uri] if uri else []))
        assert result.exit_code == 2 and result.output.startswith("error: no MLflow tracking store at")
    assert list(tmp_path.iterdir()) == []  # no folder, no database, no ./mlruns
    (tmp_path / "broken.db").write_bytes(b"\x00" * 4096)
    tic = time.perf_counter()
    result = runner.invoke(cli, ["compare", "--experiment", "x", "--tracking-uri", f"sqlite:///{tmp_path}/broken.db"])
    assert result.exit_code == 2 and "cannot open the tracking store" in result.output
    assert time.perf_counter() - tic < 20 and len(result.output.splitlines()) == 1


def test_cost_panel_with_one_model_shows_a_labelled_point_on_a_readable_axis(tmp_path):
    import matplotlib.pyplot as plt

    from bench.leaderboard_render import leaderboard_figure

    log_run("one", "resnet50", predictions_with_accuracy(0.8, 1), tmp=tmp_path)
    board = build_leaderboard(["one"], n_boot=20)
    fig = leaderboard_figure(board, ("cost",))
    ax = fig.axes[0]
    f1 = board.table.at[0, "macro_f1_mean"]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[1.0, f1]])  # 1e6 parameters, in millions
    assert ax.get_xlim() == pytest.approx((1 / 3, 3)) and ax.get_ylim()[0] < f1 < ax.get_ylim()[1]
    assert [t.get_text() for t in ax.texts] == ["resnet50+hybrid"]
    fig.canvas.draw()
    assert {t.get_text() for t in ax.get_xticklabels() if t.get_text()} >= {"0.5", "1", "2"}
    plt.close(fig)
    board.table["params_total"] = np.nan  # runs logged without a parameter count
    fig = leaderboard_figure(board, ("cost",))
    assert [t.get_text() for t in fig.axes[0].texts] == ["no parameter counts logged"]
    plt.close(fig)


def test_cost_panel_stacks_the_labels_of_near_coincident_points(store):
    import matplotlib.pyplot as plt

    from bench.leaderboard_render import leaderboard_figure

    fig = leaderboard_figure(build_leaderboard(["lb"], n_boot=20), ("cost",))
    labels = {t.get_text(): t.xyann for t in fig.axes[0].texts}  # all runs log 1e6 parameters
    assert labels == {"resnet50+hybrid": (5, 4), "xception+hybrid": (5, -6), "baseline_cnn+hybrid": (5, 4)}
    plt.close(fig)


def with_contempt(prob: np.ndarray) -> np.ndarray:
    """8-class probabilities: a FER+ model's, with a little mass on contempt."""
    out = np.hstack([prob, np.full((len(prob), 1), 0.02)])
    return out / out.sum(1, keepdims=True)


def test_runs_of_different_label_sets_are_never_ranked_together(tmp_path):
    log_run("sets", "resnet50", predictions_with_accuracy(0.8, 1), tmp=tmp_path)  # before label sets: fer2013
    log_run("sets", "xception", with_contempt(predictions_with_accuracy(0.7, 2)), label_set="ferplus", tmp=tmp_path)
    log_run("sets", "baseline_cnn", with_contempt(predictions_with_accuracy(0.6, 3)), label_set="ferplus", tmp=tmp_path)
    with pytest.raises(BenchError, match=r"fer2013 \(1 runs\), ferplus \(2 runs\).*--filter bench.label_set=ferplus"):
        build_leaderboard(["sets"], n_boot=20)
    result = CliRunner().invoke(cli, ["compare", "--experiment", "sets"])
    assert result.exit_code != 0 and result.output.count("\n") == 1 and "different label sets" in result.output
    with pytest.raises(BenchError, match="different label sets"):  # another filter must not hide the mix
        build_leaderboard(["sets"], n_boot=20, filters={"head": "hybrid"})
    with pytest.raises(BenchError, match="never scored"):
        build_leaderboard(["sets"], n_boot=20, filters={"bench.label_set": "ferplus"}, reference=True)

    ferplus = build_leaderboard(["sets"], n_boot=20, filters={"bench.label_set": "ferplus"})
    assert ferplus.label_set == "ferplus" and ferplus.class_names == FERPLUS_CLASS_NAMES
    assert list(ferplus.table["config"]) == ["xception+hybrid", "baseline_cnn+hybrid"]
    assert ferplus.table["recall_contempt_mean"].notna().all()
    assert any("8 classes" in n for n in ferplus.footnotes)
    old = build_leaderboard(["sets"], n_boot=20, filters={"bench.label_set": "fer2013"})
    assert old.class_names == FERPLUS_CLASS_NAMES[:7] and "recall_contempt_mean" not in old.table
    wide = CliRunner().invoke(cli, ["compare", "--experiment", "sets", "--filter", "bench.label_set=ferplus", "--wide"])
    assert wide.exit_code == 0 and "conte" in wide.output, wide.output


def test_bootstrap_counts_every_class_of_the_label_set():
    """A class with no support and no predictions scores 0, so FER+'s 8th class lowers macro-F1 by 1/8."""
    pred = predictions_with_accuracy(0.6, 9).argmax(1)
    index = bootstrap_index(N, 5, seed=3)
    np.testing.assert_allclose(
        macro_f1_resamples(Y_TRUE, pred, index, num_classes=8), macro_f1_resamples(Y_TRUE, pred, index) * 7 / 8
    )


def test_tta_and_calibrated_rows_are_labelled_and_mixed_rankings_footnoted(tmp_path):
    from bench.leaderboard_render import render_markdown, render_terminal

    plain = {"recipe.eval.tta": "none", "recipe.eval.calibrate": False}
    log_run("tta", "resnet50", predictions_with_accuracy(0.7, 1), recipe_hash="aaaaaaa", tmp=tmp_path, params=plain)
    flip = {"recipe.eval.tta": "flip", "recipe.eval.calibrate": True}
    run_id = log_run(
        "tta", "resnet50", predictions_with_accuracy(0.75, 2), recipe_hash="bbbbbbb", tmp=tmp_path, params=flip
    )
    with trk.TrackedRun(None, run_id=run_id) as run:
        run.metrics({"temperature": 1.8})
    log_run("tta", "xception", predictions_with_accuracy(0.6, 3), tmp=tmp_path)  # logged before recipe.eval
    board = build_leaderboard(["tta"], n_boot=20)
    t = board.table.set_index("recipe")
    assert t.loc["cpu#bbbbbb", "tta"] == "flip" and t.loc["cpu#bbbbbb", "temperature"] == pytest.approx(1.8)
    assert t.loc["cpu#aaaaaa", "tta"] == "none" and np.isnan(t.loc["cpu#aaaaaa", "temperature"])
    assert t.loc["cpu#h1", "tta"] == "none"  # a run logged before recipe.eval: no TTA
    notes = board.footnotes
    assert any(n.startswith("tta: the test faces' probabilities averaged") for n in notes)
    assert any(n.startswith("rows with and without test-time augmentation are ranked together") for n in notes)
    assert any(n.startswith("T: the softmax temperature") and n.endswith("the other rows' are raw") for n in notes)
    # the variant footnote names what changed; a run logged before recipe.eval counts as its defaults
    assert "cpu#aaaaaa: eval.calibrate=False, eval.tta=none" in notes
    assert "cpu#bbbbbb: eval.calibrate=True, eval.tta=flip" in notes
    header = next(line for line in render_terminal(board).splitlines() if line.startswith("#"))
    assert " tta " in header and " T " not in header  # the temperature is a --wide column
    assert "| tta |" in render_markdown(board) and "| T |" in render_markdown(board)
    # one kind of row only: no mixed-ranking warning, and no tta column without a TTA row
    untouched = build_leaderboard(["tta"], n_boot=20, filters={"recipe.eval.tta": "none"})
    assert not any("ranked together" in n or n.startswith("tta:") for n in untouched.footnotes)
    assert " tta " not in next(line for line in render_terminal(untouched).splitlines() if line.startswith("#"))
