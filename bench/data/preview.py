"""What a recipe's augmentation does to a face: the views ``bench data preview`` draws in one grid.

The layers are the ones training builds (:func:`bench.data.augment.build_augmenter`,
:func:`bench.data.mixing.build_mixer`) from the recipe's ``data.augment`` and ``data.mix``, applied in
training mode to copies of one face, so the preview shows the draws training makes, not a re-implementation
of them. Training applies them only in the phases with ``augment = true``.
"""

from __future__ import annotations

import numpy as np


def augmentation_rows(augment_cfg, mix_cfg, face: np.ndarray, partner: np.ndarray, views: int = 8, seed: int = 0):
    """Rows of ``(label, images)``: ``views`` draws of the whole augmentation, then of each of its layers on
    its own (flip, rotation, crop, erasing, ...), then of mixup/cutmix with ``partner`` when the recipe mixes.

    Args:
        augment_cfg, mix_cfg: the recipe's ``data.augment`` and ``data.mix``.
        face, partner: (48, 48) uint8 faces; ``partner`` is what mixing blends in.
        views: draws per row.
        seed: the layers' seed (the same seed, the same preview).

    Returns:
        ``[(row label, [(view label, (48, 48) float image 0-255), ...]), ...]``; an empty list when the
        recipe neither augments nor mixes.
    """
    import keras

    from bench.data.augment import build_augmenter
    from bench.data.mixing import build_mixer

    batch = np.repeat(np.asarray(face, np.float32).reshape(1, 48, 48, 1), views, axis=0)
    rows = []
    augmenter = build_augmenter(augment_cfg, seed)
    if augmenter is not None:
        rows.append(("recipe augmentation", _views(augmenter(batch, training=True))))
        for layer in augmenter.layers:
            rows.append((layer.name, _views(layer(batch, training=True))))
    mixer = build_mixer(mix_cfg, seed)
    if mixer is not None:
        pair = np.stack([face, partner]).astype(np.float32).reshape(2, 48, 48, 1)
        onehot = np.eye(2, dtype=np.float32)
        mixed = [keras.ops.convert_to_numpy(mixer(pair, onehot)[0])[0] for _ in range(views)]
        rows.append(("mixup/cutmix", _views(np.stack(mixed))))
    return rows


def _views(images) -> list[tuple[str, np.ndarray]]:
    import keras

    array = np.asarray(keras.ops.convert_to_numpy(images), dtype=np.float32)[..., 0]
    return [(str(i + 1), np.clip(image, 0, 255)) for i, image in enumerate(array)]


def pick_faces(images: np.ndarray, labels: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The face at ``index`` and a partner to mix it with: the next face of another class (a blend of two
    expressions is what mixup trains on), or the next face when every face has one class."""
    if not 0 <= index < len(images):
        raise IndexError(f"index must be 0-{len(images) - 1}; received index={index}")
    order = [(index + k) % len(images) for k in range(1, len(images))]
    other = next((i for i in order if labels[i] != labels[index]), order[0] if order else index)
    return images[index], images[other]
