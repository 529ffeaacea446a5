"""The one image reader: a file's pixels as 0-255 uint8, for image-folder data sets and ``bench predict``
alike, so a 16-bit or float image means the same to both (the folder loader once clipped a 16-bit PNG
to near-white and a 0-1 float TIFF to black while predict scaled them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import BenchError


class UnsupportedImage(BenchError):
    """An image whose pixel type bench cannot map to 0-255 without guessing."""


def read_image(path: Path) -> np.ndarray | None:
    """A file's pixels as stored (OpenCV's ``IMREAD_UNCHANGED``: uint8, uint16 or float, grayscale or
    BGR/BGRA), or None when the file is not an image. Formats OpenCV cannot decode are read by Pillow
    (colour as BGR too), so every image Pillow reads is read."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    if not data.size:
        return None
    try:
        frame = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:  # a header OpenCV's decoder refuses outright
        frame = None
    return frame if frame is not None else _read_with_pillow(path)


def _read_with_pillow(path: Path) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "I;16", "I", "F", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
            frame = np.asarray(img)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return None
    return frame[..., [2, 1, 0, 3][: frame.shape[2]]] if frame.ndim == 3 else frame


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """0-255 uint8 pixels from the pixel types image files hold: 8-bit as is, 16-bit scaled (65535 ->
    255), float scaled from 0-1 (or kept when already 0-255). The models and OpenCV's detector take
    8-bit pixels; a 16-bit PNG passed unscaled reads as 0-65535. Raises :class:`UnsupportedImage`
    for anything else (signed integers, floats outside 0-255, NaN)."""
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return np.round(frame.astype(np.float32) / 257.0).astype(np.uint8)
    if np.issubdtype(frame.dtype, np.floating) and frame.size:
        low, high = float(np.min(frame)), float(np.max(frame))
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
            raise UnsupportedImage(
                f"{frame.dtype} pixels from {low:g} to {high:g} have no 0-255 reading; save it as an 8- or 16-bit image"
            )
        scale = 255.0 if high <= 1.0 else 1.0
        return np.round(frame.astype(np.float32) * scale).astype(np.uint8)
    raise UnsupportedImage(f"{frame.dtype} pixels are not supported; save it as an 8- or 16-bit image")


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 grayscale from a grayscale, BGR or BGRA frame (OpenCV's channel order) of any pixel type
    :func:`to_uint8` takes."""
    import cv2

    frame = to_uint8(frame)
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return frame[..., 0]


def read_gray(path: Path) -> np.ndarray:
    """A file as uint8 grayscale at its own size; raises :class:`UnsupportedImage` for a pixel type with
    no 0-255 reading and ``BenchError`` for a file that is not an image."""
    frame = read_image(path)
    if frame is None:
        raise BenchError(f"{path}: not a readable image")
    return to_gray(frame)
