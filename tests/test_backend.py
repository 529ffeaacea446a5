import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from bench.backend import accelerators, backend_name, backend_version, inference_function, is_tensorflow


def _name_before_keras(env) -> str:
    code = "import sys; from bench.backend import backend_name; print(backend_name(), 'keras' in sys.modules)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("variable, expected", [("jax", "jax False"), ("torch", "torch False")])
def test_backend_name_reads_keras_backend_without_importing_keras(monkeypatch, variable, expected):
    import os

    assert _name_before_keras({**os.environ, "KERAS_BACKEND": variable}).split() == expected.split()


def test_backend_name_falls_back_to_keras_json_then_tensorflow(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path)
    assert _name_before_keras(env).split()[0] == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert _name_before_keras(env).split()[0] == "jax"


def test_backend_name_is_keras_own_once_imported():
    assert backend_name() == keras.backend.backend()
    assert is_tensorflow() == (keras.backend.backend() == "tensorflow")
    assert backend_version()[0].isdigit()
    assert isinstance(accelerators(), list)


def test_inference_function_matches_the_model_in_inference_mode():
    model = keras.Sequential(
        [keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(7, "softmax")]
    )
    x = np.random.default_rng(0).uniform(0, 255, (5, 48, 48, 1)).astype(np.float32)
    call = inference_function(model)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.allclose(call(x), expected, atol=1e-5)
    assert call(x[:2]).shape == (2, 7)  # another batch size


@pytest.mark.parametrize(
    "backend, gpus, setting, expected",
    [
        ("jax", [], "auto", True),
        ("torch", [], "auto", False),
        ("tensorflow", [], "auto", False),
        ("tensorflow", ["GPU:0"], "auto", True),
        ("jax", [], "off", False),
        ("tensorflow", [], "on", True),
    ],
)
def test_jit_follows_the_backend_unless_the_recipe_says(monkeypatch, backend, gpus, setting, expected):
    import bench.backend
    from bench.recipe_load import load_recipe
    from bench.train.optim import resolve_jit

    monkeypatch.setattr(bench.backend, "backend_name", lambda: backend)
    monkeypatch.setattr(bench.backend, "accelerators", lambda: gpus)
    assert resolve_jit(load_recipe("smoke", [f"run.jit_compile={setting}"])) is expected


@pytest.mark.parametrize(
    "tensorflow, gpus, expected",
    [(True, [], "float32"), (True, ["GPU:0"], "mixed_float16"), (False, ["cuda:0"], "mixed_bfloat16")],
)
def test_auto_precision_is_mixed_on_a_gpu_in_the_backend_s_type(monkeypatch, tensorflow, gpus, expected):
    import bench.backend
    from bench.train.build import resolve_precision

    monkeypatch.setattr(bench.backend, "is_tensorflow", lambda: tensorflow)
    monkeypatch.setattr(bench.backend, "accelerators", lambda: gpus)
    assert resolve_precision("auto") == expected
    assert resolve_precision("float32") == "float32"
