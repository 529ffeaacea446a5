"""How much detail augmentation leaves in a face: Keras' chain of geometric layers against one affine
resampling (``data.augment.resample``; issue 12).

Each of Keras' RandomRotation, RandomTranslation, RandomZoom and RandomShear resamples the image with
bilinear interpolation, so a recipe that rotates, shifts and zooms blurs each face three times; the legacy
ImageDataGenerator (with which the mini-Xception authors trained) composed the same draws into one affine
transform and resampled once. This script augments the first N training faces of ``--data`` under a
recipe's augmentation three ways and prints, per way, the mean pixel, the mean per-image standard deviation,
the gradient energy (mean squared difference of neighbouring pixels) and the mean Laplacian variance, with
the clean faces as the reference:

- ``per_layer``: bench's ``resample = "per_layer"`` (Keras' layers, chained);
- ``once``: bench's ``resample = "once"`` (:class:`bench.data.augment.RandomAffine`);
- ``scipy_once``: an independent reference for ``once``, written without Keras — ImageDataGenerator's math
  (rotation @ shift @ shear @ zoom, zoom drawn per axis) as one ``scipy.ndimage.affine_transform``
  (order 1, the recipe's fill).

All three apply the recipe's geometric ranges and horizontal flips only (its brightness, contrast and
occlusion are left out), so they differ in how they resample and in nothing else.

Also the mean absolute change per pixel (how far each way moves a face: equal ranges should move it about
equally) and the eager seconds per way.

    python benchmarks/investigations/augment_sharpness.py --data ../shared/data/fer2013/fer2013.csv.gz
        [--recipe arriaga] [--images 4096] [--json FILE]

About 30 s on the 2-core CPU for 4,096 faces.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np


def sharpness(faces: np.ndarray) -> dict[str, float]:
    """Mean pixel, mean per-image std, gradient energy and mean Laplacian variance of (N, H, W) faces."""
    from scipy import ndimage

    faces = np.asarray(faces, "float64")
    energy = (np.diff(faces, axis=1) ** 2).mean() + (np.diff(faces, axis=2) ** 2).mean()
    laplacian = np.mean([ndimage.laplace(face)[2:-2, 2:-2].var() for face in faces])
    return {
        "mean": float(faces.mean()),
        "std": float(faces.std(axis=(1, 2)).mean()),
        "gradient_energy": float(energy),
        "laplacian_var": float(laplacian),
    }


def scipy_once(faces: np.ndarray, cfg, seed: int = 0) -> np.ndarray:
    """ImageDataGenerator's geometric augmentation of (N, H, W) faces: one affine resampling per face."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = np.empty_like(faces, dtype="float32")
    height, width = faces.shape[1:3]
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    for i, face in enumerate(faces):
        theta = np.deg2rad(rng.uniform(-cfg.rotation_degrees, cfg.rotation_degrees))
        shift = rng.uniform(-cfg.shift, cfg.shift, 2) * (height, width)
        shear = np.deg2rad(rng.uniform(-cfg.shear_degrees, cfg.shear_degrees))
        zoom = rng.uniform(1 - cfg.zoom, 1 + cfg.zoom, 2)
        if cfg.horizontal_flip and rng.random() < 0.5:
            face = face[:, ::-1]
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        shearing = np.array([[1.0, -np.sin(shear)], [0.0, np.cos(shear)]])
        # (row, col) coordinates, output -> input about the centre: rotation @ shift @ shear @ zoom
        matrix = rotation @ shearing @ np.diag(zoom)
        offset = centre - matrix @ centre + rotation @ shift
        out[i] = ndimage.affine_transform(face, matrix, offset=offset, order=1, mode=cfg.fill_mode)
    return out


def measure(faces: np.ndarray, cfg, seed: int = 0) -> list[dict]:
    """One row per way (clean, per_layer, once, scipy_once), each with :func:`sharpness`'s figures."""
    import keras

    from bench.data.augment import build_augmenter

    # geometry and flips only: the reference has no brightness, contrast or occlusion
    cfg = dataclasses.replace(cfg, brightness=(1.0, 1.0), contrast=0.0, occlusion=0.0)
    rows = [{"way": "clean", **sharpness(faces), "mean_abs_change": 0.0, "seconds": 0.0}]
    for way in ("per_layer", "once", "scipy_once"):
        tic = time.perf_counter()
        if way == "scipy_once":
            out = scipy_once(faces, cfg, seed)
        else:
            augment = build_augmenter(dataclasses.replace(cfg, resample=way), seed)
            batches = [faces[i : i + 256, ..., None].astype("float32") for i in range(0, len(faces), 256)]
            out = np.concatenate([keras.ops.convert_to_numpy(augment(b, training=True))[..., 0] for b in batches])
        seconds = time.perf_counter() - tic
        rows.append(
            {"way": way, **sharpness(out), "mean_abs_change": float(np.abs(out - faces).mean()), "seconds": seconds}
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="FER2013 CSV, image folder or synthetic[:N[:SEED]]")
    parser.add_argument("--recipe", default="arriaga", help="the recipe whose [data.augment] is measured")
    parser.add_argument("--images", type=int, default=4096, help="how many training faces (the first N)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    from bench.data import load_data
    from bench.recipe_load import load_recipe
    from bench.train import prepare_splits

    recipe = load_recipe(args.recipe)
    cfg = recipe.data.augment
    if not cfg.enabled or not any((cfg.rotation_degrees, cfg.shift, cfg.zoom, cfg.shear_degrees)):
        parser.error(
            f"recipe {args.recipe} does not resample faces (no rotation, shift, zoom or shear); pick one that "
            "does (e.g. arriaga)"
        )
    faces = prepare_splits(load_data(args.data), recipe).x_train[: args.images].astype("float32")
    rows = measure(faces, cfg)
    clean = rows[0]
    print(
        f"{len(faces)} faces, recipe {args.recipe}: rotation {cfg.rotation_degrees} deg, shift {cfg.shift}, "
        f"zoom {cfg.zoom}, shear {cfg.shear_degrees} deg, fill {cfg.fill_mode}"
    )
    for row in rows:
        print(
            f"{row['way']:10s} mean {row['mean']:6.1f} | std {row['std']:5.1f} | gradient energy "
            f"{row['gradient_energy']:7.1f} ({row['gradient_energy'] / clean['gradient_energy']:4.0%}) | laplacian var "
            f"{row['laplacian_var']:7.1f} ({row['laplacian_var'] / clean['laplacian_var']:4.0%}) | "
            f"|change| {row['mean_abs_change']:5.1f} | {row['seconds']:.2f} s",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
