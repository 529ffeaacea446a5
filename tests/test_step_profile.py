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
    result = step_profile.profile_model("baseline_cnn", "linear", batch=8, warmup=1, steps=2)
    assert result["step_ms"] > 0 and result["op_ms_per_step"] > 0
    assert 0.0 <= result["host_gap"] <= 1.0
    assert sum(result["categories"].values()) == pytest.approx(1.0)
    assert sum(result["layers"].values()) == pytest.approx(1.0)
    assert result["categories"]["convolution"] > 0.05  # a CNN's step without its convolutions was misread
    assert "Conv2D" in result["layers"] and "BatchNormalization" in result["layers"]
