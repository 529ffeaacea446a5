"""benchmarks/backend_speed.py: one bench run per Keras backend, bench's own images/s read back."""

import json

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def script():
    return load_benchmark("backend_speed")


@pytest.mark.slow
def test_one_tensorflow_run_reads_bench_s_figures_and_reports_the_ratio(script, tmp_path, capsys):
    if not (script.ROOT / script.ENVIRONMENTS["tensorflow"] / "bin" / "python").exists():
        pytest.skip("no .venv: the script runs bench from the Makefile's environments")
    out = tmp_path / "runs.json"
    small = ["--data", "synthetic:300:0", "--epochs", "1", "--steps-per-epoch", "4", "--rounds", "1"]
    head = ["--set", "model.head_options.hybrid.projection_dim=16"]
    assert script.main(["--backend", "tensorflow", *small, *head, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["backend"] == "tensorflow" and row["images_per_second"] > 0 and 0 <= row["macro_f1"] <= 1
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("(median of 1 runs)  1.00x TensorFlow's")


def test_rounds_rotate_and_a_backend_that_never_finishes_fails_the_script(script, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(script, "ROOT", tmp_path)
    for folder in script.ENVIRONMENTS.values():
        (tmp_path / folder / "bin").mkdir(parents=True)
        (tmp_path / folder / "bin" / "python").touch()
    speeds = {"tensorflow": [300.0, 320.0], "jax": [150.0, 170.0]}
    calls = []

    def fake_run(backend, python, args):
        calls.append(backend)
        if backend == "torch":
            return {"backend": backend, "error": "exit 2: error: no torch"}
        return {"backend": backend, "macro_f1": 0.5, "fit_seconds": 9.0, "images_per_second": speeds[backend].pop()}

    monkeypatch.setattr(script, "run_once", fake_run)
    assert script.main(["--rounds", "2"]) == 1
    assert calls == ["tensorflow", "jax", "torch", "jax", "torch", "tensorflow"]
    lines = capsys.readouterr().out.strip().splitlines()
    assert "tensorflow: 310 img/s (median of 2 runs)  1.00x TensorFlow's" in lines
    assert "jax: 160 img/s (median of 2 runs)  0.52x TensorFlow's" in lines
    assert lines[-1] == "no finished run for torch: see the error rows above"
    speeds["jax"].append(200.0)
    assert script.main(["--rounds", "1", "--backend", "jax"]) == 0  # without TensorFlow: no ratio, still a figure
    assert capsys.readouterr().out.strip().splitlines()[-1] == "jax: 200 img/s (median of 1 runs)"


def test_a_refused_run_is_an_error_row(script, tmp_path):
    if not (script.ROOT / script.ENVIRONMENTS["tensorflow"] / "bin" / "python").exists():
        pytest.skip("no .venv: the script runs bench from the Makefile's environments")
    args = script.argparse.Namespace(
        data="synthetic:300:0", backbone="baseline_cnn", head="hybrid", epochs=1, steps_per_epoch=4, timeout=300
    )
    args.set = ["model.batchnorm=fast"]  # refused when the recipe loads, before TensorFlow starts
    python = str(script.ROOT / script.ENVIRONMENTS["tensorflow"] / "bin" / "python")
    row = script.run_once("tensorflow", python, args)
    assert row["backend"] == "tensorflow" and row["error"].startswith("exit 2: ") and "model.batchnorm" in row["error"]


def test_parse_summary_takes_the_last_summary_line(script):
    text = (
        "noise\nbaseline_cnn+hybrid @48px  macro_f1=0.1000  fit=3s  100 img/s  run=a\n"
        "baseline_cnn+hybrid @48px  macro_f1=0.5000  accuracy=0.6000  fit=12s  345 img/s  run=b\n"
    )
    assert script.parse_summary(text) == {"macro_f1": 0.5, "fit_seconds": 12.0, "images_per_second": 345.0}
    with pytest.raises(ValueError, match="no summary line"):
        script.parse_summary("baseline_cnn+hybrid @48px  macro_f1=0.5000  fit=1s  img/s not measured  run=c")
