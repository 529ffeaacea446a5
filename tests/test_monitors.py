import json

import keras
import numpy as np
import pytest

from bench.monitors import ResumableEarlyStopping, ResumablePlateau


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def test_early_stopping_continues_a_resumed_patience_and_restores_the_earlier_best_weights():
    model, best = tiny_model(), tiny_model(seed=1).get_weights()
    stopper = ResumableEarlyStopping(
        patience=3,
        restore_best_weights=True,
        resume={"best": 0.5, "wait": 2, "best_epoch": 4, "weights_file": "best-0-4.weights.h5"},
        load_best=lambda name: best if name == "best-0-4.weights.h5" else None,
    )
    stopper.set_model(model)
    stopper.on_train_begin()
    stopper.on_epoch_end(7, {"val_loss": 0.6})  # the third epoch without a better loss than epoch 4's
    assert model.stop_training and stopper.best_epoch == 4
    stopper.on_train_end()
    for a, b in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_without_the_best_weights_starts_afresh():
    model = tiny_model()
    stopper = ResumableEarlyStopping(
        patience=3,
        restore_best_weights=True,
        resume={"best": 0.5, "wait": 2, "best_epoch": 4},
        load_best=lambda name: None,
    )
    stopper.set_model(model)
    stopper.on_train_begin()
    stopper.on_epoch_end(7, {"val_loss": 0.6})
    assert not model.stop_training and stopper.monitor_state() == {"best": 0.6, "wait": 0, "best_epoch": 7}


def test_the_plateau_continues_its_patience_and_its_state_is_plain_json():
    model = tiny_model()
    plateau = ResumablePlateau(factor=0.1, patience=12, resume={"best": 0.5, "wait": 11, "cooldown_counter": 0})
    plateau.set_model(model)
    plateau.on_train_begin()
    plateau.on_epoch_end(20, {"val_loss": 0.6})  # the twelfth epoch without improvement: the rate is cut
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)
    assert json.loads(json.dumps(plateau.monitor_state())) == {"best": 0.5, "wait": 0, "cooldown_counter": 0}
    plateau.on_train_begin()  # a later fit of the same callback starts afresh, as Keras' does
    assert plateau.monitor_state() == {"best": None, "wait": 0, "cooldown_counter": 0}
