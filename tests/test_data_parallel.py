"""Data-parallel training on two devices under JAX (bench.devices), in a child ``.venv-jax`` Python whose CPU
XLA splits into two host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``, set before JAX
starts): BatchNorm's statistics are the global batch's; the smoke recipe's all-layers phase trains to the
same losses on one and on two devices with the same seed and global batch; a checkpoint written on two
devices resumes on one and the other way round; ``bench run --devices 2`` evaluates splits the device count
does not divide and logs ``devices = 2``.

Tolerance: relative 1e-4 on each epoch's training loss. Measured on 2026-12-07 (jax 0.10.2, 2-core CPU
shared with other jobs): the two-device losses differed from the one-device ones by at most 9e-8 relatively
(float32 reductions in another order; in this test's run they printed equal to all digits), so 1e-4 leaves
three orders of margin. Per-device BatchNorm statistics are caught by the direct check, not by this margin.
About 100 CPU seconds (6.5 minutes on the shared 2-core CPU), hence slow and outside `make test-jax`."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from tests.test_other_backends import JAX_PYTHON

TOLERANCE = 1e-4

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from dataclasses import replace
    import jax, keras, numpy as np
    from click.testing import CliRunner

    from bench.cli import cli
    from bench.data import load_for_recipe
    from bench.data.batches import predict_all
    from bench.plan import resolve_recipe
    from bench.resume import resume_point
    from bench.train import Fit

    out = {"devices_seen": len(jax.local_devices())}

    # BatchNorm on a batch whose two halves (one per device) have means 0 and 2: momentum 0 keeps the batch's
    # own statistics, so the moving mean is 1 (and the variance 1) only if they are the global batch's.
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.local_devices()[:2]))
    inputs = keras.Input((3,))
    norm = keras.layers.BatchNormalization(momentum=0.0)
    model = keras.Model(inputs, norm(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", jit_compile=True)
    x = np.concatenate([np.zeros((4, 3)), np.full((4, 3), 2.0)]).astype("float32")
    model.fit(x, x, batch_size=8, epochs=1, shuffle=False, verbose=0)
    out["bn_mean"] = keras.ops.convert_to_numpy(norm.moving_mean).tolist()
    out["bn_variance"] = keras.ops.convert_to_numpy(norm.moving_variance).tolist()
    keras.distribution.set_distribution(None)

    class Stop(keras.callbacks.Callback):  # after bench's Checkpointer: an interruption after epoch 1
        def on_epoch_end(self, epoch, logs=None):
            self.loss = float(logs["loss"])
            raise KeyboardInterrupt

    def recipe(devices):
        base = resolve_recipe("smoke", ["run.steps_per_epoch=3"], backbone="baseline_cnn",
                              data="synthetic:301:1", devices=devices)
        return replace(base, phases=(replace(base.phases[1], train="all", epochs=2),))  # augmented, all layers

    def weights(model):
        return [keras.ops.convert_to_numpy(v) for v in model.weights]

    data = load_for_recipe(recipe(1), "synthetic:301:1")
    for devices, other in ((1, 2), (2, 1)):  # epoch 1 on `devices`, interrupted; epoch 2 resumed on `other`
        first, stop = Fit.build(recipe(devices), data), Stop()
        try:
            first.train(checkpoint_dir=f"ck{devices}", callbacks=[stop])
        except KeyboardInterrupt:
            pass
        kept = weights(first.model)
        variable = first.model.trainable_variables[0].value
        resumed = Fit.build(recipe(other), data)
        state, _ = resume_point(f"ck{devices}", "test", resumed.model)
        loaded = max(float(np.max(np.abs(a - b))) for a, b in zip(kept, weights(resumed.model)))
        result = resumed.train(checkpoint_dir=f"ck{devices}", resume_state=state)
        out[f"from{devices}"] = {
            "fit_devices": [first.devices, resumed.devices],
            "variable_devices": len(variable.sharding.device_set),
            "first_loss": stop.loss,
            "loaded_max_diff": loaded,
            "optimizer_restarted": result.optimizer_restarted,
            "resumed_loss": result.history["loss"][-1],
            "end_epoch": result.end_epoch,
            "resumed_variable_devices": len(resumed.model.trainable_variables[0].value.sharding.device_set),
        }

    # the data's layout on two devices: the batch axis split over both
    two = Fit.build(recipe(2), data)
    layout = keras.distribution.distribution().get_data_layout((32, 48, 48, 1)).backend_layout
    out["batch_layout"] = [str(layout.spec), len(layout.device_set)]
    images = data.images[:101]  # an odd count: a padded batch split over two devices, padding dropped
    probs = predict_all(two.model, images)
    out["odd_predictions"] = [list(probs.shape), float(np.max(np.abs(probs - two.model.predict_on_batch(images))))]

    toml = open("one.toml", "w")
    toml.write('[data]\\nimage_size = 16\\nmax_train = 96\\n[model]\\nhead = "linear"\\nprecision = "float32"\\n'
               '[[phases]]\\nepochs = 1\\ntrain = "all"\\n[run]\\nseed = 3\\n')  # val: 33 faces, odd
    toml.close()
    run = CliRunner().invoke(cli, ["run", "--recipe", "one.toml", "--backbone", "baseline_cnn", "--data",
                                   "synthetic:301:1", "--experiment", "dp", "--devices", "2", "--no-save-model"])
    out["cli"] = [run.exit_code, run.output[-2000:]]
    import mlflow
    mlflow.set_tracking_uri("sqlite:///mlruns/mlflow.db")
    logged = mlflow.search_runs(experiment_names=["dp"], output_format="list")[0]
    out["logged"] = {k: logged.data.params.get(k) for k in ("devices", "n_val", "n_test", "recipe.run.devices")}
    out["logged_status"] = logged.info.status
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_two_jax_devices_train_like_one(tmp_path):
    if JAX_PYTHON is None:
        pytest.skip("no Python with jax (make test-jax creates .venv-jax)")
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": flags, "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    child = [JAX_PYTHON, "-c", SCRIPT]
    done = subprocess.run(child, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    print({k: [out[f"from{n}"][k] for n in (1, 2)] for k in ("first_loss", "resumed_loss")})  # pytest -s shows them
    assert out["devices_seen"] == 2
    assert out["bn_mean"] == pytest.approx([1.0] * 3, abs=1e-5)  # per-device statistics would give 0 or 2
    assert out["bn_variance"] == pytest.approx([1.0] * 3, abs=1e-5)  # ... and a variance of 0
    one, two = out["from1"], out["from2"]
    assert one["fit_devices"] == [1, 2] and two["fit_devices"] == [2, 1]
    assert one["variable_devices"] == 1 and two["variable_devices"] == 2  # replicated on both
    assert one["resumed_variable_devices"] == 2 and two["resumed_variable_devices"] == 1
    # epoch 1 on one vs two devices, then epoch 2 (resumed from those checkpoints) on two vs one
    assert two["first_loss"] == pytest.approx(one["first_loss"], rel=TOLERANCE)
    assert two["resumed_loss"] == pytest.approx(one["resumed_loss"], rel=TOLERANCE)
    for part in (one, two):
        assert part["loaded_max_diff"] == 0.0  # the checkpoint's weights, whichever device count wrote them
        assert part["optimizer_restarted"] is False and part["end_epoch"] == 2
    assert out["batch_layout"] == ["P('batch', None, None, None)", 2]  # axis 0 split over both devices
    assert out["odd_predictions"][0] == [101, 7] and out["odd_predictions"][1] < 1e-5
    code, output = out["cli"]
    assert code == 0 and "trained data-parallel on 2 devices, 16 of each 32-face batch on each" in output, output
    assert out["logged"]["devices"] == "2" and out["logged"]["recipe.run.devices"] == "2"
    assert int(out["logged"]["n_val"]) % 2 == 1  # a split two devices do not divide, evaluated whole
    assert out["logged_status"] == "FINISHED"
