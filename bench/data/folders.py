"""The image-folder layout: ``ROOT/train/<class>/*``, ``ROOT/test/<class>/*``, optional ``ROOT/val/``.

The classes are the class folders: FER2013's 7 keep their ids (and ``contempt`` makes FER+'s 8), so a
folder copy of FER2013 means what the CSV means; any other set of names is a data set of its own, its
classes in alphabetical order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import CLASS_NAMES, FACE_SIZE
from bench.data.dataset import FER2013_HINT, FerData, stratified_holdout
from bench.errors import BenchError
from bench.images import read_image, to_gray

SPLIT_DIRS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
TEST_HINT = (
    "add test/<class>/ folders of held-out faces (every run is scored and ranked on them), "
    "e.g. by moving a tenth of each train/<class>/ there"
)


def _subdirs(path: Path) -> list[tuple[str, Path]]:
    """(lower-cased name, path) of each visible sub-folder; 'Happy/' and 'happy/' both count."""
    return [(p.name.lower(), p) for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def read_face(path: Path) -> tuple[np.ndarray, bool]:
    """Read one image as uint8 48x48 grayscale; returns (pixels, converted?). Pixels are read as
    ``bench predict`` reads them (:mod:`bench.images`: 16-bit and float images scaled to 0-255), then
    resized with Pillow's bicubic filter. Raises ``BenchError`` for an unreadable file or pixel type."""
    from PIL import Image

    frame = read_image(path)
    if frame is None:
        raise BenchError(f"{path}: not a readable image")
    gray = to_gray(frame)
    converted = frame.dtype != np.uint8 or frame.ndim != 2 or gray.shape != (FACE_SIZE, FACE_SIZE)
    if gray.shape != (FACE_SIZE, FACE_SIZE):
        gray = np.asarray(Image.fromarray(gray).resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BICUBIC))
    return gray, converted


def folder_class_names(names: set[str]) -> tuple[str, ...]:
    """The class list of a folder data set: FER2013's 7 when its folders are among them, FER+'s 8 when
    ``contempt`` joins them, else the folder names sorted (a data set with classes of its own)."""
    from bench.data.ferplus import FERPLUS_CLASS_NAMES

    for known in (CLASS_NAMES, FERPLUS_CLASS_NAMES):
        if names <= set(known):
            return known
    return tuple(sorted(names))


def load_folder(root: Path, *, skip_bad: bool = False, seed: int = 0) -> FerData:
    """Load ``root/{train,val,test}/<class>/*``; class folder names match case-insensitively."""
    splits_found = [(SPLIT_DIRS[k], p) for k, p in _subdirs(root) if k in SPLIT_DIRS]
    if "train" not in {s for s, _ in splits_found}:
        raise BenchError(
            f"{root}: no 'train/' folder; expected ROOT/train/<class>/ and ROOT/test/<class>/ — {FER2013_HINT}"
        )
    if "test" not in {s for s, _ in splits_found}:
        raise BenchError(f"{root} has no test/ folder: {TEST_HINT}")
    train_dir = dict((s, p) for s, p in splits_found)["train"]
    class_names = folder_class_names({name for name, _ in _subdirs(train_dir)})
    images, labels, splits = [], [], []
    converted = 0
    dropped: dict[str, int] = {}
    for split, split_dir in splits_found:
        for name, class_dir in _subdirs(split_dir):
            if name not in class_names:
                if skip_bad:
                    dropped["unknown class folder"] = dropped.get("unknown class folder", 0) + 1
                    continue
                raise BenchError(
                    f"{class_dir}: class folder '{class_dir.name}' is not among train/'s classes "
                    f"({', '.join(class_names)}); add it to train/ or pass --skip-bad to ignore it"
                )
            label = class_names.index(name)
            for file in sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
                try:
                    pixels, was_converted = read_face(file)
                except (BenchError, OSError) as exc:
                    if skip_bad:
                        dropped["unreadable image"] = dropped.get("unreadable image", 0) + 1
                        continue
                    detail = str(exc).removeprefix(f"{file}: ") if isinstance(exc, BenchError) else exc.strerror or exc
                    raise BenchError(f"{file}: {detail}; remove it or pass --skip-bad") from exc
                images.append(pixels)
                labels.append(label)
                splits.append(split)
                converted += was_converted
    if not images:
        raise BenchError(f"{root}: no images found under train/<class>/; {FER2013_HINT}")
    labels_arr = np.array(labels, dtype=np.int64)
    splits_arr = np.array(splits, dtype="<U5")
    if not (splits_arr == "test").any():
        raise BenchError(f"{root}: no images under test/<class>/: {TEST_HINT}")
    protocol = "folders: train/ -> train, test/ -> test"
    if "val" in {s for s, _ in splits_found}:
        protocol += ", val/ -> val"
    else:
        train_idx = np.flatnonzero(splits_arr == "train")
        held = stratified_holdout(labels_arr[train_idx], 0.1, seed)
        splits_arr[train_idx[held]] = "val"
        protocol += f", a stratified seeded 10% of train/ -> val (seed {seed})"
    return FerData(
        np.stack(images),
        labels_arr,
        splits_arr,
        source=str(root),
        protocol=protocol,
        class_names=class_names,
        n_converted=converted,
        dropped=dropped,
    )
