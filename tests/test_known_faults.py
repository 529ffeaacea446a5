import keras
import pytest

from bench.backend import is_tensorflow
from bench.errors import BenchError
from bench.train.known_faults import refuse_onednn_faults, strided_pointwise_faults


def pointwise(side, channels=8, kernel=1, strides=2, nested=False):
    """A model whose one Conv2D has the given kernel and stride on a side x side x channels input."""
    inputs = keras.Input((side, side, channels))
    conv = keras.layers.Conv2D(16, kernel, strides=strides, padding="same", name="shortcut")
    if nested:
        inner_input = keras.Input((side, side, channels))
        conv = keras.Model(inner_input, conv(inner_input), name="backbone")
    return keras.Model(inputs, conv(inputs))


@pytest.mark.parametrize("side", [56, 60, 64, 100])
def test_the_crashing_shapes_are_found_in_nested_models_too(side):
    assert strided_pointwise_faults(pointwise(side)) == [f"shortcut ({side}x{side}x8 input)"]
    assert strided_pointwise_faults(pointwise(side, nested=True)) == [f"shortcut ({side}x{side}x8 input)"]


@pytest.mark.parametrize(
    "shape",
    [
        {"side": 54},  # below the smallest side that crashed
        {"side": 61},  # odd sides trained
        {"side": 60, "channels": 16},
        {"side": 60, "kernel": 3},
        {"side": 60, "strides": 1},
    ],
)
def test_shapes_that_trained_are_not_refused(shape):
    assert strided_pointwise_faults(pointwise(**shape)) == []


@pytest.mark.skipif(not is_tensorflow(), reason="the fault is TensorFlow's")
def test_a_crashing_model_is_refused_in_one_line_only_with_onednn_on(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    with pytest.raises(BenchError, match=r"^shortcut \(60x60x8 input\): .* run with TF_ENABLE_ONEDNN_OPTS=0") as caught:
        refuse_onednn_faults(pointwise(60))
    assert "\n" not in str(caught.value)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    refuse_onednn_faults(pointwise(60))  # the user turned oneDNN off: nothing to refuse
