import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from keras import layers

from bench.cli import cli
from bench.profile import forward_flops, latency_ms, peak_matmul_flops, profile, throughput, trainable_per_phase


def test_flops_of_a_known_small_conv_net_equal_the_hand_count():
    inputs = keras.Input((48, 48, 1))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)  # 2 * 48*48*4 * 3*3*1
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)  # 2 * 24*24*8 * 3*3*4
    x = layers.Flatten()(x)
    outputs = layers.Dense(7, use_bias=False)(x)  # 2 * (24*24*8) * 7
    model = keras.Model(inputs, outputs)
    hand = 2 * 48 * 48 * 4 * 9 + 2 * 24 * 24 * 8 * 9 * 4 + 2 * 24 * 24 * 8 * 7
    assert forward_flops(model) == hand


def test_profile_returns_every_field_with_sane_values():
    result = profile("baseline_cnn", "linear", recipe_name="smoke", warmup=1, steps=2)
    model_params = result["params_total"]
    assert result["image_size"] == 48 and model_params > 0
    assert result["flops_per_image"] > 2 * model_params  # convolutions reuse weights at every position
    for key in (
        "train_images_per_second",
        "infer_images_per_second",
        "latency_ms_p50",
        "peak_rss_mb",
        "keras_file_mb",
        "machine_peak_gflops",
        "train_fraction_of_peak",
    ):
        assert result[key] > 0, key
    assert result["latency_ms_p95"] >= result["latency_ms_p50"]
    assert 0 < result["train_fraction_of_peak"] < 5
    phases = result["params_trainable_per_phase"]
    assert list(phases) == ["frozen", "unfreeze_top", "unfreeze_mid", "unfreeze_low", "head_tune"]
    # the deepest 9% of the 16-layer baseline is one ReLU (no weights); the 20-43% band holds convolutions
    assert phases["frozen"] == phases["unfreeze_top"] < phases["unfreeze_low"] <= model_params


def test_profile_sets_the_recipe_s_thread_counts_before_building_the_model(tmp_path, monkeypatch):
    calls = []

    class Built(Exception):
        """Stops profile at the build: the order of the two calls is the point."""

    def build_model(**_):
        calls.append("build_model")
        raise Built

    monkeypatch.setattr("bench.runtime.set_threads", lambda intra, inter: calls.append((intra, inter)))
    monkeypatch.setattr("bench.models.build_model", build_model)
    (tmp_path / "threads.toml").write_text("[run]\nthreads_intra = 2\nthreads_inter = 1\n")
    with pytest.raises(Built):
        profile("baseline_cnn", "linear", recipe_name=str(tmp_path / "threads.toml"))
    assert calls == [(2, 1), "build_model"]


def test_profile_builds_the_model_the_recipe_trains(tmp_path, monkeypatch):
    """The recipe's BatchNorm kernel and backbone options reach the model profile times."""
    built = {}

    class Built(Exception):
        pass

    def build_model(**kwargs):
        built.update(kwargs)
        raise Built

    monkeypatch.setattr("bench.models.build_model", build_model)
    monkeypatch.setattr("bench.runtime.set_threads", lambda intra, inter: None)
    (tmp_path / "fused.toml").write_text(
        '[model]\nbatchnorm = "fused"\n[model.backbone_options.mini_xception]\nseparable_l2 = 0.01\n'
    )
    with pytest.raises(Built):
        profile("mini_xception", "linear", recipe_name=str(tmp_path / "fused.toml"))
    assert built["batchnorm"] == "fused" and built["backbone_options"] == {"separable_l2": 0.01}


def test_params_match_count_params_and_trainable_per_phase():
    from bench.models import build_model
    from bench.recipe_load import load_recipe

    model, _ = build_model(backbone="baseline_cnn", head="mlp")
    counts = trainable_per_phase(model, load_recipe("cpu"), pretrained=False)
    batchnorm_statistics = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert counts == {"train": model.count_params() - batchnorm_statistics}
    head_only = trainable_per_phase(model, load_recipe("smoke"), pretrained=False)["frozen"]
    assert head_only == model.head.count_params()


def test_peak_is_cached_and_latency_and_throughput_are_positive():
    first = peak_matmul_flops(size=256, repeats=2)
    assert first > 0 and peak_matmul_flops(size=256, repeats=2) == first
    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, layers.Dense(7, activation="softmax")(layers.Flatten()(inputs)))
    p50, p95 = latency_ms(model, warmup=1, steps=5)
    assert 0 < p50 <= p95
    train, infer = throughput(model, warmup=1, steps=2)
    assert train > 0 and infer > 0


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_profile_cli(fmt):
    result = CliRunner().invoke(
        cli,
        [
            "profile",
            "--backbone",
            "baseline_cnn",
            "--head",
            "linear",
            "--recipe",
            "smoke",
            "--warmup",
            "1",
            "--steps",
            "2",
            "--format",
            fmt,
            *(["--precision", "mixed_bfloat16"] if fmt == "json" else []),
        ],
    )
    assert result.exit_code == 0, result.output
    if fmt == "json":
        rows = json.loads(result.output)
        assert rows[0]["backbone"] == "baseline_cnn" and np.isfinite(rows[0]["flops_per_image"])
        assert rows[0]["precision"] == "mixed_bfloat16" and isinstance(rows[0]["onednn"], bool)
        assert rows[0]["batchnorm"] == "keras"  # the smoke recipe's kernel, as built
    else:
        assert "GFLOPs/img" in result.output and "baseline_cnn+linear" in result.output


def test_onednn_default_is_on_but_the_users_choice_wins(monkeypatch):
    from bench.runtime import ONEDNN_VARIABLE, configure_tensorflow_environment, onednn_enabled

    monkeypatch.delenv(ONEDNN_VARIABLE, raising=False)
    configure_tensorflow_environment()
    assert onednn_enabled()
    monkeypatch.setenv(ONEDNN_VARIABLE, "0")
    configure_tensorflow_environment()
    assert not onednn_enabled()
