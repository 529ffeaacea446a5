"""The smoke recipe end to end under KERAS_BACKEND=jax and =torch: run, compare, tune (one trial),
profile and predict, in a child Python that must never import TensorFlow.

The child is ``$BENCH_JAX_PYTHON`` / ``$BENCH_TORCH_PYTHON`` (``make test`` points the first at .venv-jax,
which has jax[cpu] and no TensorFlow; ``make test-torch`` the second at .venv-torch), else this Python when
it has that backend's library; without either the backend's test skips."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest


def backend_python(backend: str, library: str) -> str | None:
    """The Python that runs ``backend``'s checks: ``$BENCH_<BACKEND>_PYTHON``, else this one if it has
    ``library``, else None (skip)."""
    found = os.environ.get(f"BENCH_{backend.upper()}_PYTHON")
    return found or (sys.executable if importlib.util.find_spec(library) else None)


JAX_PYTHON = backend_python("jax", "jax")
PYTHONS = {"jax": JAX_PYTHON, "torch": backend_python("torch", "torch")}
VENVS = {"jax": "make test-jax creates .venv-jax", "torch": "make test-torch creates .venv-torch"}

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from bench.cli import cli
    from bench.data.synthetic import synthesize

    def bench(*args):
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    out = {}
    out["run"] = bench("run", "--recipe", "smoke", "--backbone", "baseline_cnn", "--data", "synthetic:400:1",
                       "--experiment", "smoke", "--set", 'model.batchnorm="auto"')
    out["compare"] = bench("compare", "--experiment", "smoke")
    out["tune"] = bench("tune", "--recipe", "smoke", "--backbone", "baseline_cnn", "--data", "synthetic:400:1",
                        "--trials", "1", "--experiment", "tuned")
    out["profile"] = bench("profile", "--backbone", "baseline_cnn", "--recipe", "smoke", "--warmup", "1",
                           "--steps", "2", "--format", "json")
    faces, _, _ = synthesize(2, seed=0)
    Image.fromarray(faces[0]).save("face.png")

    import mlflow
    mlflow.set_tracking_uri("sqlite:///mlruns/mlflow.db")
    run = mlflow.search_runs(experiment_names=["smoke"], output_format="list")[0]
    out["predict"] = bench("predict", "--run", run.info.run_id, "--no-detect", "--format", "json", "face.png")
    out["tags"] = run.data.tags
    out["export"] = CliRunner().invoke(
        cli, ["export", "--run", run.info.run_id, "--to", "tflite", "--out", "m.tflite"]).output
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_run_compare_tune_profile_predict_without_tensorflow(tmp_path, backend):
    if PYTHONS[backend] is None:
        pytest.skip(f"no Python with {backend} ({VENVS[backend]})")
    env = {**os.environ, "KERAS_BACKEND": backend, "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [PYTHONS[backend], "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["tensorflow_imported"] is False
    assert out["tags"]["bench.backend"] == backend and out["tags"]["epochs_actual_per_phase"] == "[1, 1, 1, 1, 1]"
    assert out["tags"]["onednn"] == "false" and backend in out["tags"]  # the backend library's version
    assert out["tags"]["batchnorm"] == "keras"  # "auto": the fused kernel is TensorFlow's
    assert "baseline_cnn+hybrid" in out["compare"]
    assert "trial" in out["tune"].lower()
    profile = json.loads(out["profile"])[0]
    assert profile["flops_per_image"] is None and profile["train_images_per_second"] > 0
    assert profile["onednn"] is False  # TensorFlow's option, not this backend's
    assert profile["batchnorm"] == "keras"
    assert json.loads(out["predict"])["faces"][0]["emotion"]
    assert "needs the TensorFlow backend" in out["export"]


REPLAN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    from bench.config import Recipe
    from bench.recipe_load import from_dict
    from bench.data import load_data
    from bench.models import build_model
    from bench.train import Trainer, prepare_splits

    keras.utils.set_random_seed(0)
    recipe = from_dict(Recipe, {
        "name": "replan", "data": {"max_train": 96, "max_eval": 48, "batch_size": 32},
        "phases": [{"epochs": 4, "train": "all", "optimizer": "adam", "learning_rate": 1e-3,
                    "schedule": "cosine", "min_lr_fraction": 0.1}],
        "run": {"seed": 3, "budget_minutes": 2.0}})
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    trainer = Trainer(model, recipe, prepare_splits(load_data("synthetic:400:2", cache=False), recipe))
    first, real = iter([60.0]), trainer._epoch_seconds  # the first epoch timed as if busy: 2 epochs planned
    trainer._epoch_seconds = lambda wall: next(first, None) or real(wall)
    result = trainer.run()
    sys.path.insert(0, "TESTS")
    from test_train import schedule_swap_reaches_the_step  # the same check as under TensorFlow
    print("RESULT" + json.dumps({"replans": result.replans, "epochs": result.actual_epochs,
                                 "rates": result.history["learning_rate"],
                                 "swap": [schedule_swap_reaches_the_step(True), schedule_swap_reaches_the_step(False)],
                                 "tensorflow_imported": "tensorflow" in sys.modules}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(JAX_PYTHON is None, reason="no Python with JAX (make test-jax creates .venv-jax)")
def test_budget_keeps_its_first_plan_under_jax(tmp_path):
    """Under jit (always under JAX) a budgeted run keeps the first epoch's plan and stops where it ends;
    the schedule swap the TensorFlow re-planning relies on would reach the jitted step too."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    script = REPLAN_SCRIPT.replace("TESTS", os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [JAX_PYTHON, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["tensorflow_imported"] is False
    assert out["swap"] == [True, False]  # a rebuilt jitted step takes a new schedule; the old one does not
    # under jit a rebuild costs more than a re-plan wins: the plan stays the first epoch's two, on its floor
    assert out["replans"] == 0 and out["epochs"] == [2]
    assert out["rates"][-1] == pytest.approx(1e-3 * 0.1, rel=1e-3)


CALIBRATION_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    from bench.calibration import apply_temperature
    from bench.inference.classifier import FaceClassifier
    from bench.inference.tta import tta_probs
    from bench.models import build_model

    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    raw = model.predict(x, verbose=0)  # compiles the predict step before the temperature is set
    model.set_temperature(0.3)
    tempered = model.predict(x, verbose=0)
    flip = FaceClassifier(model, "flip")(x)
    expected = tta_probs(lambda v: apply_temperature(model.predict(v, verbose=0), 1.0), x, "flip")
    model.save("t.keras")
    loaded = keras.models.load_model("t.keras")
    print("RESULT" + json.dumps({
        "tempered": float(np.abs(tempered - apply_temperature(raw, 0.3)).max()),
        "flip": float(np.abs(flip - expected).max()),
        "loaded": [loaded.temperature, float(np.abs(loaded.predict(x, verbose=0) - tempered).max())],
        "tensorflow_imported": "tensorflow" in sys.modules}))
    """
)


@pytest.mark.skipif(JAX_PYTHON is None, reason="no Python with JAX (make test-jax creates .venv-jax)")
def test_temperature_and_tta_under_jax(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [JAX_PYTHON, "-c", CALIBRATION_SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["tensorflow_imported"] is False
    assert out["tempered"] < 1e-5 and out["flip"] < 1e-5
    assert out["loaded"][0] == 0.3 and out["loaded"][1] < 1e-5
