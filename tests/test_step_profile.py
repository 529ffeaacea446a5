"""benchmarks/step_profile.py: the trace it reads back must account for the step's ops."""

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def step_profile():
    return load_benchmark("step_profile")


def test_op_types_fall_in_their_categories(step_profile):
    assert step_profile.categorize("_MklNativeConv2DBackpropFilter") == "convolution"
    assert step_profile.categorize("DepthwiseConv2dNative") == "depthwise conv"
    assert step_profile.categorize("_MklBatchMatMulV2") == "matmul / einsum"
    assert step_profile.categorize("ResourceApplyAdamWithAmsgrad") == "optimizer update"
    assert step_profile.categorize("SquaredDifference") == "element-wise"
    assert step_profile.categorize("NoSuchOp") == "other"


def test_head_parts_name_the_blocks_sub_layers_and_keep_their_own_ops_apart(step_profile):
    sublayers = {"mhsa", "norm1", "ffn_in"}
    part = step_profile.head_part
    assert (
        part("StatefulPartitionedCall/m_1/head_1/transformer_1/mhsa_1/query_1/MatMul", sublayers) == "transformer/mhsa"
    )
    assert part("gradient_tape/m_1/head_1/transformer_1/ffn_in_1/convolution", sublayers) == "transformer/ffn_in"
    assert part("StatefulPartitionedCall/m_1/head_1/transformer_1/add", sublayers) == "transformer/(own ops)"
    assert part("StatefulPartitionedCall/m_1/head_1/fusion_1/MatMul", sublayers) == "fusion"
    assert part("StatefulPartitionedCall/m_1/backbone_1/conv1_1/Conv2D", sublayers) == ""


def test_scopes_are_attributed_to_the_innermost_named_layer(step_profile):
    kinds = {"model": "Functional", "backbone": "Functional", "block1_bn": "BatchNormalization", "fc": "Dense"}
    assert step_profile.attribute("StatefulPartitionedCall/model_1/backbone_1/block1_bn_1/mul_2", kinds) == (
        "BatchNormalization"
    )
    assert step_profile.attribute("gradient_tape/model_1/fc_1/MatMul", kinds) == "Dense"
    assert step_profile.attribute("StatefulPartitionedCall/adam_w/Sub", kinds) == "optimizer"
    assert step_profile.attribute("StatefulPartitionedCall/Identity", kinds) == "other"


def test_a_traced_step_is_read_back_by_op_and_by_layer(step_profile):
    # the trace's schema ships inside TensorFlow, not as public API: a release that moves it skips this
    pytest.importorskip("tensorflow.tsl.profiler.protobuf.xplane_pb2")
    small_head = ("model.head_options.hybrid.projection_dim=16", "model.head_options.hybrid.fusion_units=16")
    result = step_profile.profile_model("baseline_cnn", "hybrid", batch=8, warmup=1, steps=2, overrides=small_head)
    assert result["step_ms"] > 0 and result["op_ms_per_step"] > 0
    assert 0.0 <= result["host_gap"] <= 1.0
    assert sum(result["categories"].values()) == pytest.approx(1.0)
    assert sum(result["layers"].values()) == pytest.approx(1.0)
    assert result["categories"]["convolution"] > 0.05  # a CNN's step without its convolutions was misread
    assert "Conv2D" in result["layers"] and "FusedBatchNormalization" in result["layers"]  # the cpu recipe's "auto"
    assert result["head_parts"]["transformer/mhsa"] > 0 and result["head_parts"]["fusion"] > 0
    assert sum(result["head_parts"].values()) < 1.0  # the head's share of the step, not all of it
