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


def affine_rows(angle, shift_x, shift_y, zoom_x, zoom_y, shear, height: int, width: int):
    """``keras.ops.image.affine_transform``'s rows ``[a0, a1, a2, b0, b1, b2, 0, 0]``, one per image, for a
    rotation (radians), shift (pixels), shear (radians) and zoom (1 = none), each a tensor of shape
    ``(batch,)``, about the image centre.

    The rows map an output pixel to the input point it samples, composed in ImageDataGenerator's order
    (``apply_affine_transform``: rotation @ shift @ shear @ zoom, so the shift turns with the rotation):
    input = rotation @ (shear @ zoom @ (output - centre) + shift) + centre.
    """
    cos, sin = ops.cos(angle), ops.sin(angle)
    shear_sin, shear_cos = ops.sin(shear), ops.cos(shear)
    # rotation [[cos, -sin], [sin, cos]] @ shear [[1, -sin s], [0, cos s]] @ zoom diag(zx, zy)
    a0 = cos * zoom_x
    a1 = (-cos * shear_sin - sin * shear_cos) * zoom_y
    b0 = sin * zoom_x
    b1 = (-sin * shear_sin + cos * shear_cos) * zoom_y
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a2 = cx - a0 * cx - a1 * cy + cos * shift_x - sin * shift_y
    b2 = cy - b0 * cx - b1 * cy + sin * shift_x + cos * shift_y
    zeros = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


@keras.saving.register_keras_serializable(package="bench")
class RandomAffine(layers.Layer):
    """Rotation, shift, zoom and shear drawn per image and applied as **one** affine resampling.

    Why: Keras' RandomRotation, RandomTranslation, RandomZoom and RandomShear each resample the face with
    bilinear interpolation, so chained they blur it three or four times. On 4,096 FER2013 faces under
    arriaga.toml's ranges the chain kept 39 % of the clean faces' gradient energy and 18 % of their Laplacian
    variance; one resampling of the same kind of draw (ImageDataGenerator's way, which the mini-Xception
    authors trained with) kept 63 % and 47 % (benchmarks/RESULTS.md#evidence-arriaga-resample). Evaluation sees
    clean faces, so blurrier training faces are a train/test mismatch.

    Draws per image, uniform: angle in +-``rotation_degrees``; shift in +-``shift`` of the width and of the
    height; zoom in ``[1 - zoom, 1 + zoom]`` for x and y independently (ImageDataGenerator's
    ``zoom_range``); one shear angle in +-``shear_degrees`` (ImageDataGenerator's ``shear_range``).

    Args:
        rotation_degrees: the largest rotation either way, 0-180.
        shift: the largest shift either way, as a fraction of the width (x) and the height (y), 0-1.
        zoom: the zoom range's half width, 0 <= zoom < 1 (1 would allow a zero scale).
        shear_degrees: the largest shear angle either way, 0-45.
        fill_mode: how points outside the face are filled: ``constant`` (0), ``nearest``, ``reflect`` or
            ``wrap``.
        seed: the draws' seed.

    Input/output: a batch, (batch, H, W, C) float, H and W known.

    Example:
    >>> layer = RandomAffine(rotation_degrees=10, shift=0.1, zoom=0.1, fill_mode="nearest", seed=0)
    >>> layer(np.zeros((2, 48, 48, 1), "float32"), training=True).shape
    (2, 48, 48, 1)
    """

    FILL_MODES = ("constant", "nearest", "reflect", "wrap")

    def __init__(
        self,
        rotation_degrees: float = 0.0,
        shift: float = 0.0,
        zoom: float = 0.0,
        shear_degrees: float = 0.0,
        fill_mode: str = "constant",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        limits = {
            "rotation_degrees": (rotation_degrees, 180),
            "shift": (shift, 1),
            "shear_degrees": (shear_degrees, 45),
        }
        for name, (value, top) in limits.items():
            if not 0 <= value <= top:
                raise ValueError(f"RandomAffine needs 0 <= {name} <= {top}. Received: {name}={value}")
        if not 0 <= zoom < 1:
            raise ValueError(f"RandomAffine needs 0 <= zoom < 1. Received: zoom={zoom}")
        if fill_mode not in self.FILL_MODES:
            raise ValueError(f"RandomAffine's fill_mode must be one of {self.FILL_MODES}. Received: {fill_mode!r}")
        self.rotation_degrees, self.shift, self.zoom, self.shear_degrees = rotation_degrees, shift, zoom, shear_degrees
        self.fill_mode, self.seed = fill_mode, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, batch, bound):
        return keras.random.uniform((batch,), -bound, bound, seed=self.seed_generator)

    def call(self, images, training=True):
        if not training:
            return images
        if len(images.shape) != 4 or images.shape[1] is None or images.shape[2] is None:
            raise ValueError(
                f"RandomAffine takes a batch of images, (batch, H, W, C) with H and W known. Received: shape "
                f"{tuple(images.shape)}"
            )
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        angle = self._uniform(batch, math.radians(self.rotation_degrees))
        shift_x = self._uniform(batch, self.shift * width)
        shift_y = self._uniform(batch, self.shift * height)
        zoom_x = 1.0 + self._uniform(batch, self.zoom)
        zoom_y = 1.0 + self._uniform(batch, self.zoom)
        shear = self._uniform(batch, math.radians(self.shear_degrees))
        rows = affine_rows(angle, shift_x, shift_y, zoom_x, zoom_y, shear, height, width)  # float32, never cast
        return ops.image.affine_transform(
            images, rows, interpolation="bilinear", fill_mode=self.fill_mode, fill_value=0
        )

    def get_config(self):
        return {
            **super().get_config(),
            "rotation_degrees": self.rotation_degrees,
            "shift": self.shift,
            "zoom": self.zoom,
            "shear_degrees": self.shear_degrees,
            "fill_mode": self.fill_mode,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="bench")
class RandomPadCrop(layers.Layer):
    """Random crops the way CIFAR/FER recipes take them: pad each side by ``padding`` pixels (reflected) and
    crop back to the input size at a random offset, drawn per image.

    Why a layer of our own: Keras' ``RandomCrop`` crops to a *smaller* size (and resizes or centre-crops
    at inference), not pad-and-crop; ``RandomTranslation`` resamples bilinearly at fractional offsets.
    Whole-pixel offsets through one nearest-neighbour affine map are exactly pad-then-crop, with no blur,
    in ``keras.ops`` on every backend.

    Args:
        padding: the largest shift either way, in pixels (>= 0).
        seed: the draws' seed.

    Input/output: (batch, H, W, C) float, H and W known.

    Example:
    >>> RandomPadCrop(4, seed=0)(np.zeros((2, 48, 48, 1), "float32"), training=True).shape
    (2, 48, 48, 1)
    """

    def __init__(self, padding: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(padding) != padding or padding < 0:
            raise ValueError(f"RandomPadCrop needs a whole padding >= 0. Received: padding={padding}")
        self.padding, self.seed = int(padding), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training or not self.padding:
            return images
        batch = ops.shape(images)[0]
        shifts = keras.random.randint((2, batch), -self.padding, self.padding + 1, seed=self.seed_generator)
        shifts = ops.cast(shifts, "float32")
        ones, zeros = ops.ones((batch,), "float32"), ops.zeros((batch,), "float32")
        # output pixel (x, y) samples input (x + dx, y + dy): a crop of the padded face at offset (p + dx, p + dy)
        rows = ops.stack([ones, zeros, shifts[0], zeros, ones, shifts[1], zeros, zeros], axis=1)
        return ops.image.affine_transform(images, rows, interpolation="nearest", fill_mode="reflect")

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "seed": self.seed}


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
    geometric = (cfg.rotation_degrees, cfg.shift, cfg.zoom, cfg.shear_degrees)
    if cfg.resample == "once":
        if any(geometric):
            stack.append(RandomAffine(*geometric, fill_mode=cfg.fill_mode, seed=seeded()))
    else:
        if cfg.rotation_degrees:
            stack.append(layers.RandomRotation(cfg.rotation_degrees / 360.0, fill_mode=cfg.fill_mode, seed=seeded()))
        if cfg.shift:
            stack.append(layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode=cfg.fill_mode, seed=seeded()))
        if cfg.zoom:
            stack.append(layers.RandomZoom(cfg.zoom, cfg.zoom, fill_mode=cfg.fill_mode, seed=seeded()))
        if cfg.shear_degrees:
            factor = math.tan(math.radians(cfg.shear_degrees))
            stack.append(layers.RandomShear(x_factor=factor, y_factor=factor, fill_mode=cfg.fill_mode, seed=seeded()))
    if cfg.crop_padding:
        stack.append(RandomPadCrop(cfg.crop_padding, seed=seeded()))
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
