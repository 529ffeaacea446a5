"""Batch-level mixup and cutmix with soft targets, the way timm's ``timm/data/mixup.py`` does them.

Why our own (about 60 lines) rather than a library's: timm's ``Mixup`` is PyTorch-only and
``keras_cv``'s ``MixUp``/``CutMix`` are not in Keras 3 core, while bench's batches pass through tf.data
under TensorFlow and through NumPy under JAX and PyTorch. This is written in ``keras.ops`` with a
``keras.random.SeedGenerator``, so one function mixes a batch in a tf.data map (graph mode) and in
:class:`bench.data.batches.ArrayBatches` (eager) alike, with the same seeded draws.

As in timm, one mixing weight ``lam`` is drawn per batch (Beta(alpha, alpha)), every image is mixed with
another image of the same batch (a seeded permutation; timm takes the reversed batch), and the targets
are mixed by the same weight (cutmix: by the area actually kept). Per-sample weights are mixed
likewise, so class weights still apply in proportion to each class's share of the mixed target.
"""

from __future__ import annotations

import keras
from keras import ops


class BatchMixer:
    """``(x, y[, w]) -> mixed (x, y[, w])`` for one batch.

    Args:
        mixup_alpha: Beta(alpha, alpha) for mixup's weight; 0 = no mixup.
        cutmix_alpha: Beta(alpha, alpha) for cutmix's kept area; 0 = no cutmix.
        prob: probability that a batch is mixed at all.
        switch_prob: with both on, the probability a mixed batch uses cutmix instead of mixup.
        seed: the draws' seed.

    Shapes: x (batch, H, W, C) float, y (batch, K) float (one-hot or soft), w (batch,) float.
    """

    def __init__(self, mixup_alpha=0.0, cutmix_alpha=0.0, prob=1.0, switch_prob=0.5, seed=None):
        if mixup_alpha < 0 or cutmix_alpha < 0 or not (mixup_alpha or cutmix_alpha):
            raise ValueError(
                f"BatchMixer needs mixup_alpha or cutmix_alpha > 0 (neither negative). Received: "
                f"mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha}"
            )
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        if not self.mixup_alpha:
            self.switch_prob = 1.0
        elif not self.cutmix_alpha:
            self.switch_prob = 0.0
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _beta(self, alpha: float):
        if not alpha:
            return ops.ones(())
        # Beta(a, a) as G1 / (G1 + G2) of two Gamma(a) draws: keras.random.beta is not in every Keras 3
        g = keras.random.gamma((2,), alpha, seed=self.seed_generator)
        return g[0] / (g[0] + g[1])

    def __call__(self, x, y, w=None):
        batch, height, width = ops.shape(x)[0], x.shape[1], x.shape[2]
        y = ops.cast(y, "float32")
        draws = keras.random.uniform((4,), seed=self.seed_generator)
        mixed, cutmix = draws[0] < self.prob, draws[1] < self.switch_prob
        lam_mixup, lam_cut = self._beta(self.mixup_alpha), self._beta(self.cutmix_alpha)
        perm = keras.random.shuffle(ops.arange(batch), seed=self.seed_generator)
        x2, y2 = ops.take(x, perm, axis=0), ops.take(y, perm, axis=0)
        # cutmix's box: side ratio sqrt(1 - lam), centre uniform, clipped at the borders (timm's rand_bbox)
        ratio = ops.sqrt(1.0 - lam_cut)
        cy, cx = draws[2] * height, draws[3] * width
        y0, y1 = ops.clip(cy - ratio * height / 2, 0, height), ops.clip(cy + ratio * height / 2, 0, height)
        x0, x1 = ops.clip(cx - ratio * width / 2, 0, width), ops.clip(cx + ratio * width / 2, 0, width)
        y0, y1, x0, x1 = (ops.round(v) for v in (y0, y1, x0, x1))
        rows = ops.cast(ops.arange(height), "float32")[:, None]
        cols = ops.cast(ops.arange(width), "float32")[None, :]
        box = ops.logical_and(ops.logical_and(rows >= y0, rows < y1), ops.logical_and(cols >= x0, cols < x1))
        kept_area = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
        lam = ops.where(mixed, ops.where(cutmix, kept_area, lam_mixup), 1.0)
        x_cut = ops.where(box[None, :, :, None], x2, x)
        x_mix = lam * x + (1.0 - lam) * x2
        x_out = ops.where(ops.logical_and(mixed, cutmix), x_cut, x_mix)
        y_out = lam * y + (1.0 - lam) * y2
        if w is None:
            return x_out, y_out
        w2 = ops.take(w, perm, axis=0)
        return x_out, y_out, lam * w + (1.0 - lam) * w2


def build_mixer(cfg, seed: int) -> BatchMixer | None:
    """A :class:`BatchMixer` for ``MixConfig`` ``cfg``, or None when mixup and cutmix are both off."""
    if not (cfg.mixup_alpha or cfg.cutmix_alpha):
        return None
    return BatchMixer(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.prob, cfg.switch_prob, seed=seed + 1000)
