import keras
import numpy as np
import pytest

from bench.backbones import _keras_apps
from bench.errors import BenchError
from bench.freezing import band_indices, freeze_backbone, unfreeze_all, unfreeze_band
from bench.models import build_model, effective_image_size
from bench.registry import BACKBONES, HEADS

TINY_HYBRID = {"projection_dim": 16, "num_heads": 2, "ffn_multiplier": 1.0, "branch_units": 8, "fusion_units": 16}


def options(head):
    return TINY_HYBRID if head == "hybrid" else {}


def faces(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48, 1)).astype("float32")


@pytest.mark.parametrize("backbone", BACKBONES.names())
@pytest.mark.parametrize("head", HEADS.names())
def test_every_backbone_and_head_gives_probabilities(backbone, head):
    model, spec = build_model(backbone=backbone, head=head, image_size=8, head_options=options(head))
    probs = np.asarray(model(faces(), training=False))
    assert probs.shape == (3, 7)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert spec.image_size == BACKBONES.get(backbone).info["min_size"]
    assert model.backbone.name == "backbone" and model.head.name == "head"
    keras.backend.clear_session()


@pytest.mark.parametrize("backbone", BACKBONES.names())
def test_mixed_precision_output_is_float32_and_save_load_is_exact(backbone, tmp_path):
    model, _ = build_model(
        backbone=backbone, head="hybrid", image_size=8, head_options=TINY_HYBRID, precision="mixed_float16"
    )
    assert model.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")  # no custom_objects, no safe_mode=False
    x = faces(4)
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    keras.backend.clear_session()


def test_the_model_exposes_its_parts_and_features_without_counting_weights_twice():
    model, spec = build_model(backbone="baseline_cnn", head="linear", channel_adapter="learned")
    x = faces()
    features = model.features(x, training=False)
    assert tuple(features.shape[1:]) == spec.feature_shape
    np.testing.assert_allclose(model.head(features, training=False), model(x, training=False), atol=1e-6)
    np.testing.assert_allclose(model.backbone(model.adapter(x)), features, atol=1e-6)
    parts = model.adapter.count_params() + model.backbone.count_params() + model.head.count_params()
    assert model.count_params() == parts


def test_a_saved_model_loads_in_a_fresh_process_with_its_parts(tmp_path):
    """Keras finds bench's classes by registered name only; a new interpreter has imported nothing."""
    import subprocess
    import sys

    model, _ = build_model(backbone="baseline_cnn", head="hybrid", head_options=TINY_HYBRID, channel_adapter="learned")
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", faces(4))
    np.save(tmp_path / "p.npy", model.predict(faces(4), verbose=0))
    script = (
        "import numpy as np, sys; from bench.inference.classifier import load_keras_model; "
        "m = load_keras_model(sys.argv[1] + '/m.keras'); "
        "d = np.abs(m.predict(np.load(sys.argv[1] + '/x.npy'), verbose=0) - np.load(sys.argv[1] + '/p.npy')).max(); "
        "print(type(m).__name__, m.backbone.name, m.head.name, m.features.output.shape[1:], d)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    kind, backbone, head, *_, diff = done.stdout.split()
    assert (kind, backbone, head) == ("FaceModel", "backbone", "head") and float(diff) < 1e-6


def test_weights_saved_before_the_model_class_load_by_the_same_paths(tmp_path):
    """Checkpoints written when the adapter was loose Functional layers (no FaceModel) still resume: the
    adapter layers stay at the top level, so weight paths are unchanged."""
    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="mini_xception", head="linear", image_size=64, channel_adapter="learned")
    inputs = keras.Input((48, 48, 1))
    x = inputs
    for layer in model.adapter_layers:
        x = layer(x)
    plain = keras.Model(inputs, model.head(model.backbone(x)))  # the old, plain functional layout
    plain.save_weights(tmp_path / "old.weights.h5")
    keras.utils.set_random_seed(1)
    fresh, _ = build_model(backbone="mini_xception", head="linear", image_size=64, channel_adapter="learned")
    fresh.load_weights(tmp_path / "old.weights.h5")
    for a, b in zip(plain.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_uint8_input_is_accepted_and_size_is_raised_with_a_note():
    model, spec = build_model(backbone="xception", head="linear", image_size=48)
    assert spec.image_size == 71 and "raised from 48 to 71" in spec.note
    assert effective_image_size("baseline_cnn", 48) == 48
    out = model(faces().astype("uint8").astype("float32"))
    assert out.shape == (3, 7)


def test_normalization_lives_inside_the_model():
    model, _ = build_model(backbone="resnet50", head="linear", image_size=32)
    names = [layer.name for layer in model.layers]
    assert names[:4] == ["faces", "resize", "gray_to_rgb", "normalize_caffe"]
    norm = model.get_layer("normalize_caffe")
    out = np.asarray(norm(np.full((1, 2, 2, 3), 120.0, dtype="float32")))
    assert np.allclose(out[0, 0, 0], [120 - 103.939, 120 - 116.779, 120 - 123.68], atol=1e-3)
    xception, _ = build_model(backbone="xception", head="linear")
    assert xception.get_layer("normalize_tf").scale == pytest.approx(1 / 127.5)


def test_learned_channel_adapter_starts_as_repetition():
    keras.utils.set_random_seed(0)
    repeat, _ = build_model(backbone="baseline_cnn", head="linear", channel_adapter="repeat")
    keras.utils.set_random_seed(0)
    learned, _ = build_model(backbone="baseline_cnn", head="linear", channel_adapter="learned")
    learned.backbone.set_weights(repeat.backbone.get_weights())
    learned.head.set_weights(repeat.head.get_weights())
    x = faces()
    np.testing.assert_allclose(repeat(x), learned(x), rtol=1e-5, atol=1e-6)
    assert len(learned.adapter.trainable_weights) == 2 and not repeat.adapter.trainable_weights
    with pytest.raises(BenchError, match="channel_adapter"):
        build_model(backbone="baseline_cnn", head="linear", channel_adapter="rgb")


def test_unknown_head_option_is_a_one_line_error():
    with pytest.raises(BenchError, match="head 'mlp' has no option 'projection_dim'; accepted: units, dropout"):
        build_model(backbone="baseline_cnn", head="mlp", head_options={"projection_dim": 8})


def test_freezing_head_only_leaves_only_head_weights_trainable():
    model, _ = build_model(backbone="baseline_cnn", head="mlp")
    freeze_backbone(model)
    head_ids = {id(w) for w in model.head.trainable_weights}
    assert {id(w) for w in model.trainable_weights} == head_ids
    unfreeze_all(model)
    assert len(model.trainable_weights) > len(head_ids)


@pytest.mark.parametrize("distributed", [False, True])
def test_a_phase_change_drops_compiled_steps_only_under_a_distribution(monkeypatch, distributed):
    """Keras' JAX trainer builds each step for the variable lists of its phase: under a distribution
    (run.devices > 1) a step of the last phase failed in the next one. Here the distribution is a stand-in:
    what is checked is that the steps are dropped then, and kept on one device."""
    from bench.freezing import apply_phase_trainability

    model, _ = build_model(backbone="baseline_cnn", head="mlp")
    monkeypatch.setattr(keras.distribution, "distribution", lambda: object() if distributed else None)
    built = model.train_function = model.test_function = model.predict_function = object()
    apply_phase_trainability(model, "head", (0.0, 1.0), pretrained=False)
    steps = (model.train_function, model.test_function, model.predict_function)
    assert steps == ((None, None, None) if distributed else (built, built, built))


def test_resnet50_depth_bands_are_the_seed_layers():
    backbone = BACKBONES.create("resnet50", input_shape=(32, 32, 3))
    n = len(backbone.layers)
    assert n == 175
    assert band_indices(n, 0.0, 0.09) == (160, 175)
    assert band_indices(n, 0.09, 0.20) == (140, 160)
    assert band_indices(n, 0.20, 0.43) == (100, 140)
    with pytest.raises(ValueError):
        band_indices(n, 0.5, 0.2)


@pytest.mark.parametrize("pretrained", [True, False])
def test_band_unfreezing_selects_the_band_and_handles_batchnorm(pretrained):
    model, _ = build_model(backbone="resnet50", head="linear", image_size=32)
    chosen = unfreeze_band(model, 0.0, 0.09, pretrained=pretrained)
    layers = model.backbone.layers
    in_band = [layer for layer in layers[160:175]]
    bn_in_band = [layer.name for layer in in_band if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn_in_band, "the deepest ResNet50 block has BatchNorm layers"
    expected = [layer.name for layer in in_band if not (pretrained and layer.name in bn_in_band)]
    assert chosen == expected
    assert not any(layer.trainable for layer in layers[:160] if layer.weights)
    for name in bn_in_band:
        assert model.backbone.get_layer(name).trainable is (not pretrained)
    assert model.head.trainable


def test_frozen_batchnorm_runs_in_inference_mode():
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    bn = model.backbone.get_layer("block1_bn")
    x = faces(8)
    before = [w.copy() for w in bn.get_weights()]
    freeze_backbone(model)
    model(x, training=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, bn.get_weights(), strict=True))
    unfreeze_all(model)
    model(x, training=True)
    assert not np.array_equal(before[2], bn.get_weights()[2])  # moving mean updated when trainable


def test_offline_imagenet_download_is_one_actionable_line(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] no network")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(BenchError) as err:
        build_model(backbone="resnet50", head="linear", weights="imagenet")
    text = str(err.value)
    assert "\n" not in text
    assert "resnet50" in text and "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in text
    assert "~/.keras/models" in text and "--weights none" in text and "--weights PATH" in text


def test_weights_errors_for_baseline_and_missing_files(tmp_path):
    with pytest.raises(BenchError, match="baseline_cnn has no ImageNet weights.*--weights none"):
        build_model(backbone="baseline_cnn", head="linear", weights="imagenet")
    with pytest.raises(BenchError, match="does not exist"):
        build_model(backbone="resnet50", head="linear", weights=str(tmp_path / "missing.h5"))


def test_weights_from_a_local_file(tmp_path):
    source = BACKBONES.create("baseline_cnn", input_shape=(48, 48, 3))
    path = tmp_path / "cnn.weights.h5"
    source.save_weights(path)
    model, _ = build_model(backbone="baseline_cnn", head="linear", weights=str(path))
    for a, b in zip(source.get_weights(), model.backbone.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert _keras_apps.resolve_weights("x", "none", has_imagenet=True, weights_file="f") is None


def _batchnorm_momenta(model):
    return {
        layer.momentum
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    }


def test_from_scratch_applications_use_fast_batchnorm_momentum_and_keep_it_when_saved(tmp_path):
    model, _ = build_model(backbone="mobilenet_v3_small", head="linear", image_size=8)
    assert _batchnorm_momenta(model) == {_keras_apps.FROM_SCRATCH_BN_MOMENTUM}
    model.save(tmp_path / "m.keras")
    assert _batchnorm_momenta(keras.models.load_model(tmp_path / "m.keras")) == {0.9}


def test_pretrained_applications_keep_their_batchnorm_momentum(tmp_path):
    source = BACKBONES.create("mobilenet_v3_small", input_shape=(32, 32, 3))
    path = tmp_path / "mnv3.weights.h5"
    source.save_weights(path)
    model, _ = build_model(backbone="mobilenet_v3_small", head="linear", image_size=8, weights=str(path))
    assert _batchnorm_momenta(model) == {0.999}  # Keras' own MobileNetV3 value, the weights' one
    keras.backend.clear_session()


def test_mini_xception_with_its_own_head_is_the_published_model():
    """Arriaga et al.'s mini-Xception for 64x64 gray faces and 7 classes has 58,423 parameters."""
    backbone = BACKBONES.create("mini_xception", input_shape=(64, 64, 1))
    head = HEADS.create("conv_gap", feature_shape=tuple(backbone.output.shape[1:]), num_classes=7)
    assert backbone.count_params() + head.count_params() == 58_423
    assert tuple(backbone.output.shape[1:]) == (4, 4, 128)
    assert BACKBONES.create("mini_xception", input_shape=(48, 48, 3), l2=0.0).losses == []


def test_mini_xception_regularizes_what_the_published_model_regularized():
    """L2 on the two stem convolutions only: Keras 2 ignored the authors' kernel_regularizer on
    SeparableConv2D. separable_l2 adds it to the 8 separable convolutions' two kernels each."""
    assert len(BACKBONES.create("mini_xception", input_shape=(48, 48, 3)).losses) == 2
    assert len(BACKBONES.create("mini_xception", input_shape=(48, 48, 3), separable_l2=0.01).losses) == 2 + 16


def test_backbone_options_reach_the_backbone_and_unknown_ones_fail_in_one_line():
    model, _ = build_model(backbone="mini_xception", head="linear", backbone_options={"separable_l2": 0.01})
    assert len(model.backbone.losses) == 2 + 16
    with pytest.raises(BenchError, match="backbone 'mini_xception' has no option 'dropout'; accepted: .*separable_l2"):
        build_model(backbone="mini_xception", head="linear", backbone_options={"dropout": 0.1})
    keras.backend.clear_session()


@pytest.mark.parametrize("size", [64, 47])
def test_mini_xception_shortcut_is_the_authors_strided_pointwise_convolution(size):
    """Subsample + 1x1 convolution (written so to dodge a oneDNN crash) = the authors' 1x1 stride-2
    convolution with "same" padding, on even and odd maps alike."""
    backbone = BACKBONES.create("mini_xception", input_shape=(size, size, 1))
    shortcut = backbone.get_layer("module1_shortcut")
    probe = keras.Model(backbone.input, [backbone.get_layer("stem_relu2").output, shortcut.output])
    stem, ours = probe(np.random.default_rng(0).normal(size=(2, size, size, 1)).astype("float32"))
    authors = keras.ops.conv(stem, shortcut.kernel, strides=2, padding="same")
    assert ours.shape == authors.shape
    np.testing.assert_allclose(np.asarray(ours), np.asarray(authors), atol=1e-5)


def test_mini_xception_trains_at_its_authors_64_px():
    """At 64 px its first module's 60x60x8 map crashed TensorFlow's oneDNN gradient of a 1x1 stride-2
    convolution within two steps (bench.train.known_faults); a crash here ends the test process (pytest
    prints this test in its fault traceback)."""
    from bench.train.known_faults import strided_pointwise_faults

    model, _ = build_model(backbone="mini_xception", head="conv_gap", image_size=64)
    assert strided_pointwise_faults(model) == []
    model.compile("adam", "sparse_categorical_crossentropy")
    images = faces(16)  # 48x48 faces, resized to 64 px inside the model
    history = model.fit(images, np.arange(16) % 7, batch_size=4, epochs=2, verbose=0)  # 8 steps
    assert np.isfinite(history.history["loss"][0])
    keras.backend.clear_session()


def test_a_temperature_tempers_the_output_and_travels_with_the_saved_model(tmp_path):
    from bench.calibration import apply_temperature

    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="hybrid", head_options=TINY_HYBRID)
    x = faces(4)
    raw = model.predict(x, verbose=0)  # compiles the predict step before the temperature is set
    model.set_temperature(2.5)
    tempered = model.predict(x, verbose=0)
    np.testing.assert_allclose(tempered, apply_temperature(raw, 2.5), atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), tempered, atol=1e-6)
    assert (tempered.argmax(1) == raw.argmax(1)).all() and tempered.max(1).mean() < raw.max(1).mean()
    model.save(tmp_path / "t.keras")
    loaded = keras.models.load_model(tmp_path / "t.keras")
    assert loaded.temperature == 2.5
    np.testing.assert_allclose(loaded.predict(x, verbose=0), tempered, atol=1e-6)
    model.set_temperature(1.0)
    np.testing.assert_allclose(model.predict(x, verbose=0), raw, atol=1e-6)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        model.set_temperature(0.0)


def test_a_model_saved_before_temperatures_existed_loads_untempered(tmp_path):
    """A config without the ``temperature`` key (every .keras file written before calibration) gives T = 1."""
    import json
    import zipfile

    model, _ = build_model(backbone="baseline_cnn", head="linear")
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as src, zipfile.ZipFile(tmp_path / "old.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                assert config["config"].pop("temperature") == 1.0
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    loaded = keras.models.load_model(tmp_path / "old.keras")
    assert loaded.temperature == 1.0
    np.testing.assert_allclose(loaded.predict(faces(2), verbose=0), model.predict(faces(2), verbose=0), atol=1e-6)
