"""bench/explain/attention.py: the spatial gate read from the hybrid head is the one its layer applies."""

import keras
import numpy as np
import pytest

from bench.explain.attention import attention_gates, attention_layer, spatial_attention
from bench.heads.layers import ChannelSpatialAttention
from bench.registry import HEADS

TINY_HYBRID = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}


@pytest.mark.parametrize("formulation", ["keras", "matmul"])
@pytest.mark.parametrize("shape", [(2, 6, 6, 32), (3, 3, 5, 24)])
def test_the_gates_rebuild_exactly_what_the_layer_returns(formulation, shape):
    """x + x * channel_gate * spatial_gate == layer(x): the gates recomputed here are the layer's own."""
    keras.utils.set_random_seed(0)
    layer = ChannelSpatialAttention(reduction=4, kernel_size=3, formulation=formulation)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, shape).astype("float32")
    layer.build(shape)
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])
    channel, spatial = attention_gates(layer, x)
    channel, spatial = np.asarray(channel), np.asarray(spatial)
    assert channel.shape == (shape[0], 1, 1, shape[3]) and spatial.shape == shape[:3] + (1,)
    assert 0 < spatial.min() and spatial.max() < 1 and spatial.std() > 0.01  # a real map, not a constant
    np.testing.assert_allclose(x + x * channel * spatial, np.asarray(layer(x)), rtol=1e-5, atol=1e-5)


def test_the_hybrid_head_map_goes_through_its_projection_first():
    keras.utils.set_random_seed(3)
    head = HEADS.create("hybrid", feature_shape=(4, 4, 8), num_classes=7, **TINY_HYBRID)
    features = np.random.default_rng(4).normal(0, 1, (2, 4, 4, 8)).astype("float32")
    maps = spatial_attention(head, features)
    assert maps.shape == (2, 4, 4) and maps.dtype == np.float32 and np.all((maps > 0) & (maps < 1))
    projected = np.asarray(head.get_layer("projection")(features))  # the layer's input is the projection's output
    _, expected = attention_gates(attention_layer(head), projected)
    np.testing.assert_allclose(maps, np.asarray(expected)[..., 0], atol=1e-6)


@pytest.mark.parametrize("head_name", [h for h in HEADS.names() if h != "hybrid"])
def test_heads_without_attention_have_no_map(head_name):
    head = HEADS.create(head_name, feature_shape=(3, 3, 8), num_classes=7)
    assert attention_layer(head) is None
    assert spatial_attention(head, np.zeros((1, 3, 3, 8), "float32")) is None
