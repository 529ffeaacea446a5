"""Augmentation built from Keras 3 core preprocessing layers, applied to whole batches in tf.data."""

from __future__ import annotations

import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="bench")
class RandomBrightnessScale(layers.Layer):
    """Multiply each image by a factor drawn uniformly from ``[low, high]`` (the legacy
    ImageDataGenerator's ``brightness_range``; Keras' RandomBrightness is additive instead), then clip
    to ``[0, 255]``.

    Input/output: (batch, H, W, C) float, values 0-255.
    """

    def __init__(self, low: float, high: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= low <= high:
            raise ValueError(f"need 0 <= low <= high; received low={low}, high={high}")
        self.low, self.high, self.seed = low, high, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        batch = ops.shape(images)[0]
        factor = keras.random.uniform((batch, 1, 1, 1), self.low, self.high, seed=self.seed_generator)
        return ops.clip(images * factor, 0.0, 255.0)

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high, "seed": self.seed}


def build_augmenter(cfg, seed: int) -> keras.Sequential | None:
    """A Sequential of augmentation layers for ``AugmentConfig`` ``cfg``; None when nothing is enabled.

    Always call it on batches (rank 4): a Sequential of these layers called on one image returns the
    wrong shape.
    """
    if not cfg.enabled:
        return None
    stack: list[layers.Layer] = []

    def seeded() -> int:
        return seed + len(stack)

    if cfg.horizontal_flip:
        stack.append(layers.RandomFlip("horizontal", seed=seeded()))
    if cfg.rotation_degrees:
        stack.append(layers.RandomRotation(cfg.rotation_degrees / 360.0, fill_mode=cfg.fill_mode, seed=seeded()))
    if cfg.shift:
        stack.append(layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode=cfg.fill_mode, seed=seeded()))
    if cfg.zoom:
        stack.append(layers.RandomZoom(cfg.zoom, cfg.zoom, fill_mode=cfg.fill_mode, seed=seeded()))
    if cfg.shear_degrees:
        factor = math.tan(math.radians(cfg.shear_degrees))
        stack.append(layers.RandomShear(x_factor=factor, y_factor=factor, fill_mode=cfg.fill_mode, seed=seeded()))
    if tuple(cfg.brightness) != (1.0, 1.0):
        stack.append(RandomBrightnessScale(*cfg.brightness, seed=seeded()))
    if cfg.contrast:
        stack.append(layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=seeded()))
    if cfg.occlusion:
        stack.append(
            layers.RandomErasing(
                factor=cfg.occlusion, scale=(0.02, 0.15), fill_value=0.0, value_range=(0, 255), seed=seeded()
            )
        )
    return keras.Sequential(stack, name="augment") if stack else None
