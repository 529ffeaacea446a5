import subprocess
import sys
import textwrap

import pytest

from bench.errors import BenchError
from bench.registry import BACKBONES, HEADS, Registry


def test_register_get_create_and_wildcards():
    reg = Registry("widget", "bench.tests.none")

    @reg.register(size=3)
    def small_widget(*, scale=1):
        return ("small", scale)

    @reg.register
    def big_widget(*, scale=1):
        return ("big", scale)

    assert reg.create("small_widget", scale=2) == ("small", 2)
    assert reg.get("small_widget").info == {"size": 3}
    assert reg.names() == ["big_widget", "small_widget"]
    assert reg.names("small*") == ["small_widget"]
    assert "big_widget" in reg


def test_duplicate_registration_is_an_error():
    reg = Registry("widget", "bench.tests.none")

    @reg.register
    def thing():
        return 1

    with pytest.raises(BenchError, match="already registered"):
        reg.register(thing)


def test_unknown_name_suggests_close_matches_and_lists_known():
    with pytest.raises(BenchError) as err:
        BACKBONES.get("resnet5")
    text = str(err.value)
    assert "Did you mean resnet50" in text and "Known: baseline_cnn" in text and "\n" not in text


def test_builtin_registries():
    assert BACKBONES.names() == [
        "baseline_cnn",
        "efficientnet_b3",
        "mini_xception",
        "mobilenet_v3_small",
        "resnet50",
        "xception",
    ]
    assert HEADS.names() == ["conv_gap", "hybrid", "linear", "mlp"]
    for name in BACKBONES.names():
        info = BACKBONES.get(name).info
        assert {"min_size", "normalization", "imagenet"} <= set(info)
    assert BACKBONES.get("xception").info["min_size"] == 71


def test_entry_point_plugin_outside_bench_is_loaded_lazily(tmp_path, monkeypatch):
    """A package that is not part of bench registers a backbone through the entry-point group."""
    site = tmp_path / "site"
    pkg = site / "bench_test_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        def tiny_plugin_net(*, input_shape=(32, 32, 3), weights="none"):
            import keras
            inputs = keras.Input(input_shape)
            x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
            return keras.Model(inputs, x, name="backbone")
        tiny_plugin_net.bench_info = {"min_size": 8, "normalization": "unit", "imagenet": False}
    """)
    )
    dist = site / "bench_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench.backbones]\ntiny_plugin_net = bench_test_plugin:tiny_plugin_net\n")
    monkeypatch.syspath_prepend(str(site))
    reg = Registry("backbone", "bench.backbones")
    assert "tiny_plugin_net" in reg.names()
    assert reg.get("tiny_plugin_net").info["min_size"] == 8
    model = reg.create("tiny_plugin_net", input_shape=(16, 16, 3))
    assert model.output.shape[-1] == 4
    sys.modules.pop("bench_test_plugin", None)


def test_plugin_backbone_builds_into_a_full_model(tmp_path, monkeypatch):
    from bench.models import build_model

    @BACKBONES.register(min_size=8, normalization="unit", imagenet=False)
    def test_only_backbone(*, input_shape, weights="none"):
        import keras

        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Conv2D(8, 3, strides=2)(inputs), name="backbone")

    try:
        model, spec = build_model(backbone="test_only_backbone", head="linear", image_size=16)
        assert model.output.shape == (None, 7) and spec.image_size == 16
    finally:
        BACKBONES._entries.pop("test_only_backbone")


@pytest.mark.parametrize("registry", [BACKBONES, HEADS], ids=["backbones", "heads"])
def test_names_are_known_without_importing_the_factories(registry):
    fresh = Registry(registry.kind, registry.entry_point_group, registry._builtin_modules)
    assert fresh.known_names() == registry.names() and not fresh._loaded
    fresh.check(registry.names()[0])
    with pytest.raises(BenchError, match=f"unknown {registry.kind} 'nope'"):
        fresh.check("nope")
    assert not fresh._loaded


def test_a_backbone_typo_fails_before_tensorflow_loads():
    code = (
        "import sys; from click.testing import CliRunner; from bench.cli import cli; "
        "r = CliRunner().invoke(cli, ['run', '--backbone', 'resnet5', '--data', 'synthetic:300:1']); "
        "print(r.exit_code, 'tensorflow' in sys.modules, r.output)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("2 False error: unknown backbone 'resnet5'. Did you mean resnet50?"), out
