"""bench/heads/layers.py: the "matmul" formulation of each attention layer computes what the "keras" one
does, on the same variables, so either runs any saved weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench.heads.layers import ChannelSpatialAttention, SpatialTransformerBlock
from bench.registry import HEADS

# (layer class, constructor options, input shape): a 1x1 map (one key), key_dim != C // heads, an odd FFN
CASES = [
    (SpatialTransformerBlock, {"num_heads": 4}, (2, 6, 6, 32)),
    (SpatialTransformerBlock, {"num_heads": 2}, (3, 1, 1, 16)),
    (SpatialTransformerBlock, {"num_heads": 3, "key_dim": 5, "ffn_multiplier": 1.5}, (2, 3, 5, 24)),
    (ChannelSpatialAttention, {"reduction": 4}, (2, 6, 6, 32)),
    (ChannelSpatialAttention, {"reduction": 8, "kernel_size": 3}, (3, 1, 1, 16)),
    (ChannelSpatialAttention, {"reduction": 64}, (2, 3, 5, 24)),  # one hidden unit
]


def twins(cls, options, shape, seed=0, **common):
    """The layer in each formulation, built, with the same fixed random weights; and an input."""
    rng = np.random.default_rng(seed)
    pair = [cls(formulation=f, **options, **common) for f in ("keras", "matmul")]
    for layer in pair:
        layer.build(shape)
    weights = [rng.normal(0, 0.3, w.shape).astype("float32") for w in pair[0].get_weights()]
    for layer in pair:
        layer.set_weights(weights)
    return pair, rng.normal(0, 1, shape).astype("float32")


# The variables a saved layer holds, by path without the layer's own (auto-numbered) name: pinned, because
# both formulations share one build(), so comparing them with each other alone could never fail.
PATHS = {
    SpatialTransformerBlock: [
        "mhsa/query/kernel", "mhsa/query/bias", "mhsa/key/kernel", "mhsa/key/bias",
        "mhsa/value/kernel", "mhsa/value/bias", "mhsa/attention_output/kernel", "mhsa/attention_output/bias",
        "norm1/gamma", "norm1/beta", "norm2/gamma", "norm2/beta",
        "ffn_in/kernel", "ffn_in/bias", "ffn_out/kernel", "ffn_out/bias",
    ],
    ChannelSpatialAttention: [
        "mlp_hidden/kernel", "mlp_hidden/bias", "mlp_out/kernel", "mlp_out/bias",
        "spatial_conv/kernel", "spatial_conv/bias",
    ],
}  # fmt: skip


@pytest.mark.parametrize("cls, options, shape", CASES)
def test_both_formulations_hold_the_pinned_variables(cls, options, shape):
    keras_layer, matmul_layer = twins(cls, options, shape)[0]
    for layer in (keras_layer, matmul_layer):
        assert [v.path.split("/", 1)[1] for v in layer.weights] == PATHS[cls], layer.formulation
    assert [v.shape for v in keras_layer.weights] == [v.shape for v in matmul_layer.weights]


@pytest.mark.parametrize("cls, options, shape", CASES)
def test_the_matmul_formulation_computes_the_keras_one(cls, options, shape):
    (keras_layer, matmul_layer), x = twins(cls, options, shape)
    expected = np.asarray(keras_layer(x, training=False))
    np.testing.assert_allclose(matmul_layer(x, training=False), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls, options, shape", CASES)
def test_the_matmul_formulation_has_the_keras_gradients(cls, options, shape):
    (keras_layer, matmul_layer), x = twins(cls, options, shape)
    upstream = tf.constant(np.random.default_rng(1).normal(0, 1, shape).astype("float32"))

    def gradients(layer):
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs, training=False) * upstream)
        return tape.gradient(loss, [inputs, *layer.trainable_variables])

    for got, want in zip(gradients(matmul_layer), gradients(keras_layer), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_without_dropout_training_computes_the_same_too():
    (keras_layer, matmul_layer), x = twins(SpatialTransformerBlock, {"num_heads": 4, "dropout": 0.0}, (2, 4, 4, 16))
    np.testing.assert_allclose(matmul_layer(x, training=True), keras_layer(x, training=True), atol=1e-5)


def test_the_matmul_formulation_drops_out_in_training_only():
    (_, matmul_layer), x = twins(SpatialTransformerBlock, {"num_heads": 4, "dropout": 0.5}, (2, 4, 4, 16))
    inference = np.asarray(matmul_layer(x, training=False))
    np.testing.assert_array_equal(matmul_layer(x, training=False), inference)
    assert np.abs(np.asarray(matmul_layer(x, training=True)) - inference).max() > 1e-2


@pytest.mark.parametrize(
    "cls, options",
    [
        (SpatialTransformerBlock, {"num_heads": 4}),
        (ChannelSpatialAttention, {"reduction": 4}),  # its matmul path adds mlp_out.bias outside the Dense layer
    ],
)
def test_the_matmul_formulation_follows_mixed_precision(cls, options):
    (keras_layer, matmul_layer), x = twins(cls, options, (2, 4, 4, 16), dtype="mixed_float16")
    got, want = matmul_layer(x, training=False), keras_layer(x, training=False)
    assert got.dtype == want.dtype == "float16"
    np.testing.assert_allclose(np.asarray(got, "float32"), np.asarray(want, "float32"), atol=2e-2)


@pytest.mark.parametrize("cls", [SpatialTransformerBlock, ChannelSpatialAttention])
def test_formulation_is_validated_and_serialized(cls):
    with pytest.raises(ValueError, match="formulation must be one of keras, matmul; received formulation='fast'"):
        cls(formulation="fast")
    config = cls(formulation="matmul").get_config()
    assert config["formulation"] == "matmul" and cls.from_config(config).formulation == "matmul"
    del config["formulation"]  # a layer saved before the option existed
    assert cls.from_config(config).formulation == "keras"


TINY = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}


@pytest.mark.parametrize("formulation", ["keras", "matmul"])
def test_the_hybrid_head_option_reaches_both_layers(formulation):
    head = HEADS.create("hybrid", feature_shape=(3, 3, 8), formulation=formulation, **TINY)
    assert head.get_layer("transformer").formulation == formulation
    assert head.get_layer("channel_spatial_attention").formulation == formulation
    keras.backend.clear_session()


def test_saved_heads_load_in_their_formulation_and_weights_run_in_either(tmp_path):
    x = np.random.default_rng(0).normal(0, 1, (4, 3, 3, 8)).astype("float32")
    keras.utils.set_random_seed(0)
    saved = HEADS.create("hybrid", feature_shape=(3, 3, 8), formulation="matmul", **TINY)
    saved.save(tmp_path / "head.keras")
    saved.save_weights(tmp_path / "head.weights.h5")
    expected = saved.predict(x, verbose=0)
    loaded = keras.models.load_model(tmp_path / "head.keras")
    assert loaded.get_layer("transformer").formulation == "matmul"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    other = HEADS.create("hybrid", feature_shape=(3, 3, 8), formulation="keras", **TINY)
    other.load_weights(tmp_path / "head.weights.h5")
    np.testing.assert_allclose(other.predict(x, verbose=0), expected, atol=1e-5)
    keras.backend.clear_session()
