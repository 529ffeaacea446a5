import keras
import pytest

from bench.backend import is_tensorflow
from bench.errors import BenchError
from bench.train.known_faults import refuse_onednn_faults, strided_pointwise_faults


def pointwise(height, width=None, channels=8, kernel=1, strides=2, nested=False, data_format="channels_last"):
    """A model whose one Conv2D has the given kernel and stride on a height x width x channels input."""
    width = width or height
    shape = (height, width, channels) if data_format == "channels_last" else (channels, height, width)
    inputs = keras.Input(shape)
    conv = keras.layers.Conv2D(16, kernel, strides=strides, padding="same", data_format=data_format, name="shortcut")
    if nested:
        inner_input = keras.Input(shape)
        conv = keras.Model(inner_input, conv(inner_input), name="backbone")
    return keras.Model(inputs, conv(inputs))


@pytest.mark.parametrize(
    "shape",
    [  # shapes that crashed (benchmarks/investigations/onednn_strided_pointwise.py)
        {"height": 56},
        {"height": 100},
        {"height": 62, "width": 50},
        {"height": 60, "strides": (1, 2)},
        {"height": 84, "strides": 3},
        {"height": 60, "channels": 15},
    ],
)
def test_the_crashing_shapes_are_found_in_nested_models_too(shape):
    found = strided_pointwise_faults(pointwise(**shape))
    assert len(found) == 1 and found[0].startswith("shortcut (")
    assert strided_pointwise_faults(pointwise(**shape, nested=True)) == found


@pytest.mark.parametrize(
    "shape",
    [  # shapes that trained
        {"height": 54},
        {"height": 64, "width": 48},  # 768 output pixels, the most that trained
        {"height": 61},  # the stride does not divide the side
        {"height": 60, "width": 61},
        {"height": 60, "strides": 3},
        {"height": 81, "strides": 3},
        {"height": 60, "channels": 16},
        {"height": 60, "kernel": 3},
        {"height": 60, "strides": 1},
    ],
)
def test_shapes_that_trained_are_not_refused(shape):
    assert strided_pointwise_faults(pointwise(**shape)) == []


def test_channels_first_inputs_are_read_by_their_channel_axis():
    assert strided_pointwise_faults(pointwise(60, data_format="channels_first")) == [
        "shortcut (60x60x8 input, strides 2x2)"
    ]
    assert strided_pointwise_faults(pointwise(60, channels=64, data_format="channels_first")) == []


@pytest.mark.skipif(not is_tensorflow(), reason="the fault is TensorFlow's")
def test_a_crashing_model_is_refused_in_one_line_only_with_onednn_on(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    with pytest.raises(BenchError, match=r"^shortcut \(60x60x8 input, .* run with TF_ENABLE_ONEDNN_OPTS=0") as caught:
        refuse_onednn_faults(pointwise(60))
    assert "\n" not in str(caught.value)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    refuse_onednn_faults(pointwise(60))  # the user turned oneDNN off: nothing to refuse


@pytest.mark.skipif(not is_tensorflow(), reason="the fault is TensorFlow's")
def test_bench_run_and_profile_refuse_it_before_training(monkeypatch):
    import bench.models
    from bench.profile import profile
    from bench.recipe_load import load_recipe
    from bench.train import build_for_recipe

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setattr(bench.models, "build_model", lambda **options: (pointwise(60), None))
    with pytest.raises(BenchError, match="^shortcut"):
        build_for_recipe(load_recipe("smoke"))
    with pytest.raises(BenchError, match="^shortcut"):
        profile("baseline_cnn", "linear")
