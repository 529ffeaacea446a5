import keras
import numpy as np
import pytest

import bench.backend
from bench.batchnorm import (
    FusedBatchNormalization,
    check_batchnorm,
    fuse_batchnorm,
    recompute_statistics,
    resolve_batchnorm,
)
from bench.errors import BenchError
from bench.models import build_model

TINY_HYBRID = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}


def pair(momentum):
    """A Keras BatchNormalization and a fused one with the same config and (non-trivial) weights."""
    rng = np.random.default_rng(0)
    plain = keras.layers.BatchNormalization(momentum=momentum)
    plain.build((None, 5, 5, 6))
    plain.set_weights([rng.uniform(0.5, 2, 6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, 6)])
    fused = FusedBatchNormalization.from_config(plain.get_config())
    fused.build((None, 5, 5, 6))
    fused.set_weights(plain.get_weights())
    x = rng.normal(2.0, 3.0, (4, 5, 5, 6)).astype("float32")
    return plain, fused, x


def test_fused_equals_keras_in_inference():
    plain, fused, x = pair(0.9)
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)


@pytest.mark.parametrize("momentum", [0.9, 0.99])
def test_fused_equals_keras_in_training_with_the_same_moving_statistics(momentum):
    plain, fused, x = pair(momentum)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, atol=1e-5)


def test_unfusable_input_runs_keras_path():
    """2-D input is not the fused kernel's; the layer falls back to Keras' call."""
    plain = keras.layers.BatchNormalization()
    fused = FusedBatchNormalization()
    x = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-5)


def test_fuse_batchnorm_keeps_weights_and_outputs():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    model = keras.Model(inputs, x, name="backbone")
    model.layers[-1].moving_variance.assign(np.full(4, 2.0, "float32"))
    fused = fuse_batchnorm(model)
    assert fused.name == "backbone"
    assert isinstance(fused.layers[-1], FusedBatchNormalization)
    assert fused.layers[-1].momentum == 0.9
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(fused(x, training=False), model(x, training=False), atol=1e-5)


def native_batchnorms(model):
    found = []
    for layer in model.layers:
        if type(layer) is keras.layers.BatchNormalization:
            found.append(layer)
        if isinstance(layer, keras.Model):
            found += native_batchnorms(layer)
    return found


@pytest.mark.parametrize("backbone", ["baseline_cnn", "mini_xception"])
def test_a_fused_model_has_no_keras_batchnorm_and_saves_and_loads(backbone, tmp_path):
    model, _ = build_model(backbone=backbone, image_size=48, head_options=TINY_HYBRID, batchnorm="fused")
    assert model.backbone.name == "backbone"
    assert not native_batchnorms(model.backbone)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.backbone.layers)
    faces = np.random.default_rng(3).integers(0, 256, (2, 48, 48, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert not native_batchnorms(loaded.backbone)
    np.testing.assert_allclose(loaded(faces, training=False), model(faces, training=False), atol=1e-6)
    keras.backend.clear_session()


def test_fused_needs_tensorflow(monkeypatch):
    monkeypatch.setattr(bench.backend, "backend_name", lambda: "jax")
    assert check_batchnorm("keras") == "keras"
    with pytest.raises(BenchError, match="KERAS_BACKEND=tensorflow"):
        check_batchnorm("fused")


def test_auto_builds_the_fused_kernel_under_tensorflow():
    model, spec = build_model(backbone="baseline_cnn", image_size=48, head_options=TINY_HYBRID, batchnorm="auto")
    assert spec.batchnorm == "fused" and not native_batchnorms(model.backbone)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.backbone.layers)
    keras.backend.clear_session()


@pytest.mark.parametrize(("backend", "kernel"), [("tensorflow", "fused"), ("jax", "keras"), ("torch", "keras")])
def test_auto_picks_the_fused_kernel_only_where_tensorflow_runs(monkeypatch, backend, kernel):
    monkeypatch.setattr(bench.backend, "backend_name", lambda: backend)
    assert resolve_batchnorm("auto") == kernel
    assert resolve_batchnorm("keras") == "keras"
    with pytest.raises(BenchError, match="model.batchnorm must be one of keras, fused, auto"):
        resolve_batchnorm("fast")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_fused_matches_keras_under_mixed_precision(policy):
    """16-bit input goes to the fused kernel as is; the statistics and output stay as Keras computes them
    (both compute the statistics in float32; measured: equal outputs, moving variance within 5e-7)."""
    plain, fused, x = pair(0.9)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        plain16 = keras.layers.BatchNormalization.from_config({**plain.get_config(), "dtype": policy})
        fused16 = FusedBatchNormalization.from_config(plain16.get_config())
        for layer in (plain16, fused16):
            layer.build(x.shape)
            layer.set_weights(plain.get_weights())
        x16 = keras.ops.cast(x, plain16.compute_dtype)
        assert fused16._fusable(x16, None)
        out_fused, out_plain = fused16(x16, training=True), plain16(x16, training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert out_fused.dtype == out_plain.dtype == plain16.compute_dtype
    np.testing.assert_allclose(np.asarray(out_fused, "float32"), np.asarray(out_plain, "float32"), atol=1e-2)
    np.testing.assert_allclose(fused16.moving_variance, plain16.moving_variance, atol=1e-4)


def small_net(momentum=0.9):
    """conv -> BatchNorm -> a nested model with a BatchNorm and a frozen BatchNorm."""
    inner_in = keras.Input((4, 4, 3))
    y = keras.layers.BatchNormalization(momentum=momentum, name="inner_bn")(inner_in)
    y = keras.layers.BatchNormalization(momentum=momentum, name="frozen_bn")(y)
    inner = keras.Model(inner_in, y, name="inner")
    inner.get_layer("frozen_bn").trainable = False
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(3, 1, use_bias=False, kernel_initializer="ones", name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=momentum, name="outer_bn")(x)
    return keras.Model(inputs, inner(x))


def test_recompute_statistics_writes_the_size_weighted_mean_of_the_batch_statistics():
    """Gray (N, H, W) faces in a seeded random order, all of them (9 images, batch 4: three batches of
    three): each trainable BatchNorm gets the size-weighted mean over batches of its batch mean and biased
    batch variance; a frozen one keeps its own; the weights and momenta are untouched."""
    model = small_net()
    rng = np.random.default_rng(4)
    faces = rng.uniform(0, 255, (9, 4, 4)).astype("float32")
    frozen = model.get_layer("inner").get_layer("frozen_bn")
    frozen.moving_mean.assign(np.full(3, 7.0, "float32"))
    weights = [w.copy() for w in model.get_layer("conv").get_weights()]
    assert recompute_statistics(model, faces, batch_size=4, seed=3) == 2
    # the conv's ones kernel copies the face into each of 3 channels
    batches = [faces[index] for index in np.array_split(np.random.default_rng(3).permutation(9), 3)]
    variance = sum(len(b) * b.var() for b in batches) / 9  # within-batch: less than faces.var()
    outer = model.get_layer("outer_bn")
    np.testing.assert_allclose(outer.moving_mean, np.full(3, faces.mean()), rtol=1e-5)
    np.testing.assert_allclose(outer.moving_variance, np.full(3, variance), rtol=1e-4)
    inner = model.get_layer("inner").get_layer("inner_bn")  # its input is outer_bn's normalised output
    np.testing.assert_allclose(inner.moving_mean, np.zeros(3), atol=1e-4)
    np.testing.assert_allclose(frozen.moving_mean, np.full(3, 7.0))
    np.testing.assert_allclose(model.get_layer("conv").get_weights()[0], weights[0])
    assert outer.momentum == inner.momentum == 0.9


def test_recompute_statistics_mixes_class_grouped_images():
    """An image folder lists its faces class by class. Read in that order, each batch would hold one
    class and the averaged batch variance would miss the variance between classes (here: two groups of
    faces at 0 and 200, batch 8 -> zero variance in order); shuffled, the batches mix them."""
    model = small_net()
    faces = np.concatenate([np.zeros((32, 4, 4)), np.full((32, 4, 4), 200.0)]).astype("float32")
    recompute_statistics(model, faces, batch_size=8)
    population = faces.var()  # 10,000
    variance = keras.ops.convert_to_numpy(model.get_layer("outer_bn").moving_variance)
    assert np.all(variance > 0.7 * population) and np.all(variance <= population * 1.0001)


def test_recompute_statistics_applies_the_transform_to_each_batch():
    model = small_net()
    faces = np.random.default_rng(7).uniform(0, 255, (6, 4, 4)).astype("float32")
    sizes = []

    def halve(batch):
        sizes.append(batch.shape)
        return batch / 2

    recompute_statistics(model, faces, batch_size=4, transform=halve)
    assert sizes == [(3, 4, 4, 1), (3, 4, 4, 1)]
    np.testing.assert_allclose(model.get_layer("outer_bn").moving_mean, np.full(3, faces.mean() / 2), rtol=1e-5)


def test_recompute_statistics_that_fails_mid_way_leaves_the_statistics_as_they_were():
    model = small_net()
    outer = model.get_layer("outer_bn")
    outer.moving_mean.assign(np.full(3, 5.0, "float32"))
    faces = np.random.default_rng(8).uniform(0, 255, (8, 4, 4)).astype("float32")
    calls = []

    def fail_on_second(batch):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("out of memory")
        return batch

    with pytest.raises(MemoryError):
        recompute_statistics(model, faces, batch_size=4, transform=fail_on_second)
    np.testing.assert_allclose(outer.moving_mean, np.full(3, 5.0))
    np.testing.assert_allclose(outer.moving_variance, np.ones(3))
    assert outer.momentum == 0.9


def test_recompute_statistics_with_fewer_images_than_a_batch_uses_them_all_and_no_layers_is_a_no_op():
    model = small_net()
    faces = np.random.default_rng(5).uniform(0, 255, (3, 4, 4, 1)).astype("float32")
    assert recompute_statistics(model, faces, batch_size=256) == 2
    np.testing.assert_allclose(model.get_layer("outer_bn").moving_mean, np.full(3, faces.mean()), rtol=1e-5)
    plain = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1)])
    assert recompute_statistics(plain, faces) == 0


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
def test_recompute_statistics_sets_fused_layers_the_same_way():
    model = build_model(backbone="baseline_cnn", image_size=48, head_options=TINY_HYBRID)[0]
    fused = build_model(backbone="baseline_cnn", image_size=48, head_options=TINY_HYBRID, batchnorm="fused")[0]
    fused.set_weights(model.get_weights())
    faces = np.random.default_rng(6).integers(0, 256, (20, 48, 48)).astype("float32")
    assert recompute_statistics(model, faces, batch_size=8) == recompute_statistics(fused, faces, batch_size=8) > 0
    for a, b in zip(model.get_weights(), fused.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    keras.backend.clear_session()
