"""WeightEMA: the moving average of the weights validated, restored and kept (phases.N.ema_decay)."""

import keras
import numpy as np
import pytest

from bench.config import Recipe
from bench.data import load_data
from bench.models import build_model
from bench.recipe_load import from_dict
from bench.train import Trainer, prepare_splits
from bench.train.ema import WeightEMA


class _Recorder(keras.callbacks.Callback):
    """The weights before and after every step, and the weights the model holds at every epoch end."""

    def __init__(self):
        super().__init__()
        self.steps, self.before, self.epoch_ends = [], [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.before.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self.model.get_weights())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(self.model.get_weights())


def _tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


@pytest.mark.parametrize("every", [1, 3])
def test_the_model_holds_the_average_at_epoch_ends_and_trains_on_the_raw_weights(every):
    model = _tiny_model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(48, 4)).astype("float32"), rng.normal(size=(48, 3)).astype("float32")
    start = model.get_weights()
    ema, seen = WeightEMA(0.9, every=every), _Recorder()
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[ema, seen])
    average = [w.astype("float64") for w in start]
    for step, weights in enumerate(seen.steps, start=1):
        if step % every == 0:
            decay = min(0.9, (1 + step) / (10 + step)) ** every
            average = [decay * a + (1 - decay) * w for a, w in zip(average, weights, strict=True)]
        if step == 6:  # the first epoch's end: the average is in the model
            for held, expected in zip(seen.epoch_ends[0], average, strict=True):
                np.testing.assert_allclose(held, expected, rtol=1e-5, atol=1e-6)
    for held, expected in zip(model.get_weights(), average, strict=True):
        np.testing.assert_allclose(held, expected, rtol=1e-5, atol=1e-6)
    # the second epoch trained on from the raw weights, not from the average swapped in at the first's end
    for before_7, after_6 in zip(seen.before[6], seen.steps[5], strict=True):
        np.testing.assert_array_equal(before_7, after_6)
    assert not all(np.allclose(a, b) for a, b in zip(seen.steps[5], seen.epoch_ends[0], strict=True))


def test_several_steps_per_execution_count_every_step():
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", steps_per_execution=4)
    x, y = np.ones((64, 4), "float32"), np.zeros((64, 3), "float32")
    ema = WeightEMA(0.99, every=4)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[ema])
    assert ema.updates == 16  # 8 steps an epoch, reported 4 at a time


def test_the_checkpoint_keeps_the_raw_weights_and_a_resume_trains_on_from_them(tmp_path):
    from bench.train import checkpoints

    model = _tiny_model()
    x, y = np.ones((32, 4), "float32"), np.zeros((32, 3), "float32")
    ema = WeightEMA(0.9, every=1)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[ema])
    writer = checkpoints.Checkpointer(tmp_path, 0, [3], ema=ema)
    writer.set_model(model)
    writer.on_epoch_end(1)  # after 2 of 3 epochs: the model holds the average, the raw weights are aside
    fresh = _tiny_model()
    fresh.load_weights(tmp_path / "weights.weights.h5")
    resumed = WeightEMA(0.9, every=1)
    folder = checkpoints.CheckpointFolder(tmp_path)
    assert not folder.restore_ema(checkpoints.ResumeState(0, 1, (3,)), resumed, fresh)  # other position
    assert folder.restore_ema(checkpoints.ResumeState(0, 2, (3,)), resumed, fresh)
    for held, raw in zip(fresh.get_weights(), ema.raw, strict=True):
        np.testing.assert_array_equal(held, raw)
    for a, b in zip(resumed.average, ema.average, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert resumed.updates == ema.updates == 8


def test_weight_ema_refuses_bad_settings():
    with pytest.raises(ValueError, match="0 < decay < 1"):
        WeightEMA(1.0)
    with pytest.raises(ValueError, match="every >= 1"):
        WeightEMA(0.9, every=0)


def test_a_phase_with_ema_decay_validates_restores_and_keeps_the_averaged_weights():
    data = load_data("synthetic:200:2", cache=False)
    recipe = from_dict(
        Recipe,
        {
            "data": {"max_train": 96, "max_eval": 48, "batch_size": 32, "augment": {"enabled": False}},
            "class_weights": {"scheme": "none"},
            "phases": [{"name": "all", "epochs": 3, "learning_rate": 1e-3, "ema_decay": 0.9}],
            "run": {"seed": 3, "monitor": "val_loss"},
        },
    )
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    seen = _Recorder()
    trainer = Trainer(model, recipe, prepare_splits(data, recipe), callbacks=[seen])
    result = trainer.run()
    assert trainer.ema is not None and trainer.ema.updates == 3 * trainer.steps_per_epoch
    # every epoch end saw the average (validation, restore and checkpoint run then); the raw weights trained
    for held, average in zip(seen.epoch_ends[-1], trainer.ema.average, strict=True):
        np.testing.assert_allclose(held, average, rtol=1e-5, atol=1e-6)
    for held, raw in zip(seen.epoch_ends[-1], seen.steps[-1], strict=True):
        assert held.shape == raw.shape
    assert any(not np.allclose(a, b) for a, b in zip(seen.epoch_ends[-1], seen.steps[-1], strict=True))
    # the kept model is the best epoch's average (validation loss picked it)
    best = int(np.argmin(result.history["val_loss"]))
    for kept, held in zip(model.get_weights(), seen.epoch_ends[best], strict=True):
        np.testing.assert_allclose(kept, held, rtol=1e-5, atol=1e-6)
