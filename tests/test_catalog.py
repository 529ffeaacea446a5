"""bench.catalog: `bench list` from a cache keyed by what the counts depend on."""

import json
import os
import subprocess
import sys

import pytest

from bench import catalog as cat


@pytest.fixture()
def counted(monkeypatch, tmp_path):
    """A cache folder of its own and a stand-in for the slow model-building catalog that counts calls."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_catalog():
        calls.append(1)
        return {"backbones": [{"name": "b", "params": len(calls)}], "heads": []}

    monkeypatch.setattr("bench.reports.model_catalog", fake_catalog)
    return calls


def test_the_catalog_is_built_once_then_read_from_the_cache(counted):
    first = cat.cached_model_catalog()
    second = cat.cached_model_catalog()
    assert first == second and len(counted) == 1
    assert cat.cached_model_catalog(refresh=True)["backbones"][0]["params"] == 2


def test_a_changed_key_or_a_corrupt_file_rebuilds_it(counted, monkeypatch, tmp_path):
    cat.cached_model_catalog()
    (cached,) = tmp_path.glob("catalog-*.json")
    cached.write_text("{not json")
    assert cat.cached_model_catalog()["backbones"][0]["params"] == 2
    monkeypatch.setattr(cat, "_version", lambda package: "99.0")  # a Keras upgrade
    assert cat.cached_model_catalog()["backbones"][0]["params"] == 3
    assert len(list(tmp_path.glob("catalog-*.json"))) == 2


def test_the_key_follows_the_model_source_and_plugins(monkeypatch):
    key = cat.catalog_key()
    assert key == cat.catalog_key()
    monkeypatch.setattr(cat, "_module_file", lambda module: None)
    assert cat.catalog_key() != key


def test_an_unwritable_cache_still_lists(counted, monkeypatch, tmp_path):
    monkeypatch.setattr(cat, "cache_dir", lambda: tmp_path / "missing" / "folder")
    assert cat.cached_model_catalog()["backbones"][0]["name"] == "b"


def test_bench_list_with_a_warm_cache_does_not_load_tensorflow(tmp_path):
    """The real catalog, written once; a fresh process then lists without importing TensorFlow."""
    key = cat.catalog_key()
    backbone = {"name": "baseline_cnn", "params": 1, "min_size": 8, "imagenet": False, "layers": 3}
    fake = {"backbones": [{**backbone, "normalization": "unit"}], "heads": [{"name": "mlp", "description": "d"}]}
    (tmp_path / f"catalog-{key}.json").write_text(json.dumps(fake))
    code = (
        "import sys; from click.testing import CliRunner; from bench.cli import cli; "
        "r = CliRunner().invoke(cli, ['list']); print(r.exit_code, 'tensorflow' in sys.modules); print(r.output)"
    )
    env = {**os.environ, "BENCH_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.splitlines()[0] == "0 False"
    assert "baseline_cnn" in out and "mlp" in out
