"""benchmarks/reevaluate.py: a logged run re-scored under every TTA mode, with a temperature fitted on val."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import load_benchmark


@pytest.mark.slow
def test_a_logged_run_is_rescored_per_tta_mode_with_its_own_splits():
    from bench.cli import cli

    reevaluate = load_benchmark("reevaluate")
    tiny = [
        "run.budget_minutes=0",
        "phases.0.epochs=1",
        "run.steps_per_epoch=2",
        "data.max_train=64",
        "data.max_eval=48",
    ]
    args = ["run", "--recipe", "cpu", "--backbone", "baseline_cnn", "--data", "synthetic", "--experiment", "re"]
    result = CliRunner().invoke(cli, [*args, *(a for o in tiny for a in ("--set", o)), "-q"])
    assert result.exit_code == 0, result.output
    run_id = result.output.split("run=")[1].split()[0]
    printed = CliRunner().invoke(reevaluate.main, ["--run", run_id, "--crop-padding", "2"])
    assert printed.exit_code == 0, printed.output
    rows = [json.loads(line) for line in printed.output.splitlines() if line.startswith("{")]
    assert [r["tta"] for r in rows] == ["none", "flip", "crops"]
    for row in rows:
        assert 0 < row["temperature"] and np.isfinite(row["log_loss_calibrated"])
        assert 0 <= row["test_macro_f1"] <= 1 and 0 <= row["ece_calibrated"] <= 1
    # the plain row is the run's own evaluation: the same test macro-F1 it logged
    from bench import tracking as trk

    trk.connect(None, create=False)
    logged = trk.find_run(run_id).data.metrics
    assert rows[0]["test_macro_f1"] == pytest.approx(logged["test_macro_f1"], abs=1e-6)
    assert "none" in printed.output.splitlines()[-3]  # the table
