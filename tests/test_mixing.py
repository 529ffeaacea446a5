"""Batch-level mixup / cutmix (bench.data.mixing) and its place in both input streams."""

import keras
import numpy as np
import pytest

from bench.config import MixConfig
from bench.data.batches import ArrayBatches, make_stream
from bench.data.mixing import BatchMixer, build_mixer


def _batch(n=8, size=6):
    """Image i is constant 10 * i + 5 and of class i: a mixed target names both partners and the weight."""
    x = np.stack([np.full((size, size, 1), 10.0 * i + 5, "float32") for i in range(n)])
    return x, np.eye(n, dtype="float32"), np.arange(1, n + 1, dtype="float32")


def _np(parts):
    return [keras.ops.convert_to_numpy(p) for p in parts]


def _partners(y_mixed):
    """(own weight, partner) per row of mixed one-hot targets of classes 0..n-1 (partner -1: not mixed)."""
    out = []
    for i, row in enumerate(y_mixed):
        others = np.delete(np.arange(len(row)), i)
        j = others[np.argmax(row[others])]
        out.append((row[i], j if row[j] > 1e-6 else -1))
    return out


def test_mixup_mixes_images_targets_and_weights_by_one_weight_per_batch():
    x, y, w = _batch()
    xm, ym, wm = _np(BatchMixer(mixup_alpha=0.4, seed=0)(x, y, w))
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, atol=1e-6)
    pairs = _partners(ym)
    assert any(j >= 0 for _, j in pairs)
    lams = {round(float(lam), 5) for lam, j in pairs if j >= 0}
    assert len(lams) == 1  # one weight per batch, as timm draws it
    for i, (lam, j) in enumerate(pairs):
        j = i if j < 0 else j
        np.testing.assert_allclose(xm[i], lam * x[i] + (1 - lam) * x[j], rtol=1e-5)
        np.testing.assert_allclose(wm[i], lam * w[i] + (1 - lam) * w[j], rtol=1e-5)


def test_cutmix_pastes_a_box_and_mixes_targets_by_the_area_kept():
    x, y, _ = _batch(size=12)
    for seed in range(4):
        xm, ym = _np(BatchMixer(cutmix_alpha=1.0, seed=seed)(x, y))
        for i, (lam, j) in enumerate(_partners(ym)):
            kept = float(np.mean(xm[i] == x[i]))
            np.testing.assert_allclose(lam, kept, atol=1e-5)  # the target follows the area kept
            if j >= 0:
                assert set(np.unique(xm[i])) == {x[i, 0, 0, 0], x[j, 0, 0, 0]}
                box = xm[i, ..., 0] == x[j, 0, 0, 0]
                rows, cols = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
                assert box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # one rectangle


def test_prob_zero_leaves_every_batch_as_it_was_and_draws_are_seeded():
    x, y, w = _batch()
    out = _np(BatchMixer(mixup_alpha=1.0, cutmix_alpha=1.0, prob=0.0, seed=0)(x, y, w))
    for a, b in zip(out, (x, y, w), strict=True):
        np.testing.assert_allclose(a, b)
    first = _np(BatchMixer(mixup_alpha=1.0, cutmix_alpha=1.0, seed=5)(x, y, w))
    again = _np(BatchMixer(mixup_alpha=1.0, cutmix_alpha=1.0, seed=5)(x, y, w))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a, b)


def test_build_mixer_is_none_when_both_are_off_and_bad_alphas_are_one_line():
    assert build_mixer(MixConfig(), seed=0) is None
    assert isinstance(build_mixer(MixConfig(mixup_alpha=0.2), seed=0), BatchMixer)
    with pytest.raises(ValueError, match="mixup_alpha or cutmix_alpha"):
        BatchMixer()


def test_both_streams_mix_training_batches():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8)).astype("uint8")
    labels = np.arange(40) % 4
    weights = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    mixer = BatchMixer(mixup_alpha=1.0, seed=0)
    stream = make_stream(images, labels, batch_size=8, weights=weights, shuffle=True, mixer=mixer)
    x, y, w = next(iter(stream)) if not isinstance(stream, ArrayBatches) else stream[0]
    y, w = keras.ops.convert_to_numpy(y), keras.ops.convert_to_numpy(w)
    assert y.shape == (8, 4) and np.any((y > 0) & (y < 1))  # soft targets: some mixing happened
    assert np.all((w >= 1) & (w <= 4)) and not np.all(np.isin(w, weights))
    plain = ArrayBatches(images, labels, batch_size=8, weights=weights, shuffle=True, mixer=mixer)
    _, y2, _ = plain[0]
    assert np.any((y2 > 0) & (y2 < 1))


def test_a_phase_trains_on_the_mixed_stream_when_mixing_is_on_even_without_augmentation():
    from bench.config import Recipe
    from bench.data import load_data
    from bench.models import build_model
    from bench.recipe_load import from_dict
    from bench.train import Trainer, prepare_splits

    data = load_data("synthetic:120:2", cache=False)
    base = {"data": {"max_train": 64, "max_eval": 32, "batch_size": 32, "augment": {"enabled": False}}}
    phases = [{"name": "head", "epochs": 1, "train": "head"}, {"name": "all", "epochs": 1, "augment": False}]
    plain = from_dict(Recipe, {**base, "phases": phases})
    mixed = from_dict(Recipe, {**base, "phases": phases, "data": {**base["data"], "mix": {"mixup_alpha": 0.2}}})
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    for recipe, expected in ((plain, False), (mixed, True)):
        trainer = Trainer(model, recipe, prepare_splits(data, recipe))
        head, everything = recipe.phases
        assert trainer._augmented(head) is expected and trainer._cacheable(head) is not expected
        assert not trainer._augmented(everything)  # phases.N.augment = false turns mixing off too
