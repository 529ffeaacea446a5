"""benchmarks/speed_ratios.py (also run as benchmarks/cpu_speed.py --ratios): the cases it times, how it
reduces them, and its fused BatchNorm."""

import math
import sys

import pytest

from tests.conftest import BENCHMARKS, load_benchmark


@pytest.fixture(scope="module")
def ratios():
    try:
        yield load_benchmark("speed_ratios")
    finally:
        sys.modules.pop("speed_ratios", None)


def test_the_default_cases_vary_one_factor_at_a_time(ratios):
    cases = ratios.ratio_cases(ratios.PAIRS, [1, 4, 16], [(2, 1), (1, 1)], bare=True)
    assert len(cases) == 4 * 8 + 1 + 2 * len(ratios.HEAD_SIZES) + 3 and len({c.name for c in cases}) == len(cases)
    names = {c.name: c for c in cases}
    assert all(c.reference in names for c in cases)
    mlp = [c for c in cases if c.model == "baseline_cnn+mlp"]
    assert [(c.spe, c.threads) for c in mlp][:5] == [(1, (0, 0)), (4, (0, 0)), (16, (0, 0)), (1, (2, 1)), (1, (1, 1))]
    assert [(c.name, c.spe, c.threads, c.batchnorm, c.precision, c.reference) for c in mlp[5:]] == [
        ("baseline_cnn+mlp fused BN", 1, (0, 0), "fused", "float32", "baseline_cnn+mlp spe1"),
        ("baseline_cnn+mlp bf16", 1, (0, 0), "keras", "mixed_bfloat16", "baseline_cnn+mlp spe1"),
        ("baseline_cnn+mlp fused BN bf16", 1, (0, 0), "fused", "mixed_bfloat16", "baseline_cnn+mlp spe1"),
    ]
    assert all(c.batchnorm == "keras" and c.precision == "float32" for c in mlp[:5])
    assert names["bare CNN, fused BatchNorm"].reference == "bare CNN, keras BatchNorm"
    matmul = [c for c in cases if c.formulation != "keras"]
    assert [(c.name, c.spe, c.threads, c.reference) for c in matmul] == [
        ("baseline_cnn+hybrid formulation matmul", 1, (0, 0), "baseline_cnn+hybrid spe1")
    ]
    sized = [c for c in cases if c.head_options]
    assert {(c.model, c.spe, c.threads, c.formulation, c.reference) for c in sized} == {
        ("baseline_cnn+hybrid", 1, (0, 0), "keras", "baseline_cnn+hybrid spe1")
    }
    assert [(c.name, c.batchnorm) for c in sized[:2]] == [
        ("baseline_cnn+hybrid head ffn 2", "keras"),
        ("baseline_cnn+hybrid head ffn 2 fused BN", "fused"),
    ]
    sizes = list(ratios.HEAD_SIZES.values())
    assert [c.head_options for c in sized[::2]] == [c.head_options for c in sized[1::2]] == sizes


def test_cases_selects_by_name_and_keeps_what_they_are_divided_by(ratios):
    cases = ratios.ratio_cases(ratios.PAIRS, [1, 4, 16], [(2, 1), (1, 1)], bare=True)
    chosen = [c.name for c in ratios.select(cases, "formulation|mlp spe1$")]
    assert chosen == ["baseline_cnn+mlp spe1", "baseline_cnn+hybrid spe1", "baseline_cnn+hybrid formulation matmul"]
    sized = [c.name for c in ratios.select(cases, "head |baseline_cnn.(mlp|hybrid) fused BN$")]
    heads = [f"baseline_cnn+hybrid head {s}{f}" for s in ratios.HEAD_SIZES for f in ("", " fused BN")]
    mlp, hybrid = ["baseline_cnn+mlp spe1", "baseline_cnn+mlp fused BN"], ["baseline_cnn+hybrid spe1"]
    assert sized == mlp + hybrid + heads + ["baseline_cnn+hybrid fused BN"]
    fused = [c.name for c in ratios.select(cases, "fused")]
    assert fused[-2:] == ["bare CNN, keras BatchNorm", "bare CNN, fused BatchNorm"]
    assert fused[:3] == ["baseline_cnn+mlp spe1", "baseline_cnn+mlp fused BN", "baseline_cnn+mlp fused BN bf16"]


def test_blocks_are_whole_calls(ratios):
    assert [ratios.whole_calls(s, 16) for s in (0, 2, 16, 17)] == [0, 16, 16, 32]
    assert ratios.whole_calls(3, 1) == 3


def test_ratios_pair_rounds_and_take_the_median(ratios):
    cases = ratios.ratio_cases(["baseline_cnn+mlp", "baseline_cnn+hybrid"], [4], [], bare=False)

    def rounds(*ms):
        return [{"round": r, "ms_per_step": v, "input_wait": 0.1} for r, v in enumerate(ms) if v is not None]

    results = {c.name: [] for c in cases}
    results["baseline_cnn+mlp spe1"] = rounds(100.0, 200.0, 100.0)  # round 1 slowed by load for both
    results["baseline_cnn+mlp spe4"] = rounds(90.0, 180.0, None)  # round 2 failed
    results["baseline_cnn+hybrid spe1"] = rounds(150.0, 300.0, 160.0)
    rows = {r["name"]: r for r in ratios.summarize(cases, results)}
    assert rows["baseline_cnn+mlp spe4"]["ratio"] == pytest.approx(0.9)
    assert rows["baseline_cnn+mlp spe1"]["median_ms"] == 100.0 and rows["baseline_cnn+mlp spe1"]["spread"] == 1.0
    assert math.isnan(rows["baseline_cnn+hybrid spe4"]["ratio"])
    assert ratios.hybrid_over_mlp(results, [4]) == {1: pytest.approx(1.5)}
    assert ratios.formulations_over_mlp(results) == {"keras": pytest.approx(1.5)}  # no matmul figures
    results["baseline_cnn+hybrid formulation matmul"] = rounds(120.0, None, 130.0)
    assert ratios.formulations_over_mlp(results) == {"keras": pytest.approx(1.5), "matmul": pytest.approx(1.25)}
    assert math.isnan(ratios.fused_hybrid_over_mlp(results))
    results["baseline_cnn+mlp fused BN"] = rounds(80.0, 160.0, 80.0)
    results["baseline_cnn+hybrid fused BN"] = rounds(100.0, 240.0, 120.0)
    assert ratios.fused_hybrid_over_mlp(results) == pytest.approx(1.5)  # median of 1.25, 1.5, 1.5
    no_small_heads = {"recipe": pytest.approx(1.5), "recipe fused BN": pytest.approx(1.5)}
    assert ratios.head_sizes_over_mlp(results) == no_small_heads
    results["baseline_cnn+hybrid head projection 128"] = rounds(110.0, 260.0, 130.0)
    results["baseline_cnn+hybrid head projection 128 fused BN"] = rounds(100.0, 200.0, 96.0)
    sizes = ratios.head_sizes_over_mlp(results)
    assert sizes == {
        "recipe": pytest.approx(1.5),
        "recipe fused BN": pytest.approx(1.5),
        "projection 128": pytest.approx(1.3),  # median of 1.1, 1.3, 1.3
        "projection 128 fused BN": pytest.approx(1.25),  # median of 1.25, 1.25, 1.2
    }


def test_the_bare_cnn_s_fused_variant_holds_bench_s_fused_batch_norm(ratios):
    from bench.batchnorm import FusedBatchNormalization

    layers = ratios.bare_cnn("fused").layers
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in layers) == 4
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in layers)
    assert not any("BatchNormalization" in type(layer).__name__ for layer in ratios.bare_cnn("none").layers)


def test_the_table_names_each_case_s_threads(ratios, capsys):
    cases = ratios.ratio_cases(["baseline_cnn+mlp"], [], [(2, 1)], bare=False)
    rows = ratios.summarize(cases, {c.name: [] for c in cases})
    ratios.print_table(cases, rows, {}, {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[:2] for line in lines[-5:]] == [
        ["baseline_cnn+mlp spe1", "default"],
        ["baseline_cnn+mlp threads 2/1", "2/1"],
        ["baseline_cnn+mlp fused BN", "default"],
        ["baseline_cnn+mlp bf16", "default"],
        ["baseline_cnn+mlp fused BN bf16", "default"],
    ]


@pytest.mark.parametrize("script, argv", [("speed_ratios", []), ("cpu_speed", ["--ratios"])])
def test_a_steps_per_execution_that_does_not_divide_the_epoch_is_refused(script, argv, monkeypatch, capsys):
    """Before any worker starts; also through cpu_speed.py --ratios, which hands its arguments over."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as when the script runs: its folder is on sys.path
    module = load_benchmark(script)
    try:
        with pytest.raises(SystemExit) as exit_info:
            module.main([*argv, "--spe", "4", "--spe", "5", "--quick"])
    finally:
        for name in {script, "speed_ratios"}:  # cpu_speed imports speed_ratios from the folder
            sys.modules.pop(name, None)
    assert exit_info.value.code == 2
    assert "--spe 5: the epoch's 144 steps must be whole calls; use 1, 2, 3, 4, 6, 8, 9, 12, 16, 18" in (
        capsys.readouterr().err
    )
