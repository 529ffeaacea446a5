"""FER2013 packed to travel to a GPU machine without the CSV: Training + PrivateTest rows as raw uint8
pixels with labels, xz-compressed with a delta filter (neighbouring pixels differ little), ~56 MB.

    python benchmarks/fer_carry.py [--csv ../shared/data/fer2013/fer2013.csv.gz] [--out .carry] [--wheels]

writes ``.carry/fer2013.u8.xz`` (git-ignored: the data must never be committed) and, with ``--wheels``,
the keras, namex and optree wheels a GPU machine without a package registry needs. Layout of the
decompressed stream: a JSON header line (counts, class names), then ``n`` label bytes, ``n`` split bytes
(0 train, 1 test) and ``n * 48 * 48`` pixel bytes.
"""

from __future__ import annotations

import argparse
import json
import lzma
import subprocess
import sys
from pathlib import Path

import numpy as np

FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 1}, {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
SPLITS = ("train", "test")
DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def pack(images: np.ndarray, labels: np.ndarray, splits: np.ndarray, path: Path) -> Path:
    """Write the train and test rows of ``images`` (N, 48, 48) uint8 to ``path``; other rows are left out."""
    keep = np.isin(splits, SPLITS)
    n = int(keep.sum())
    header = {"n": n, "shape": list(images.shape[1:]), "splits": list(SPLITS)}
    code = np.array([SPLITS.index(s) for s in splits[keep]], np.uint8)
    with lzma.open(path, "wb", format=lzma.FORMAT_XZ, filters=FILTERS) as f:
        f.write((json.dumps(header) + "\n").encode())
        f.write(labels[keep].astype(np.uint8).tobytes())
        f.write(code.tobytes())
        f.write(np.ascontiguousarray(images[keep], np.uint8).tobytes())
    return path


def unpack(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images (N, 48, 48) uint8, labels (N,) int64, splits (N,) "train"/"test")`` from :func:`pack`."""
    with lzma.open(path, "rb") as f:
        header = json.loads(f.readline())
        n, shape = header["n"], tuple(header["shape"])
        labels = np.frombuffer(f.read(n), np.uint8).astype(np.int64)
        splits = np.array(header["splits"])[np.frombuffer(f.read(n), np.uint8)]
        images = np.frombuffer(f.read(n * int(np.prod(shape))), np.uint8).reshape(n, *shape)
    return images, labels, splits


def wheel_download_command(folder: Path, python_version: str) -> list[str]:
    """``pip download`` of binary wheels for the GPU machine's Python, whatever Python runs here: optree is
    compiled, so a wheel built for this machine's interpreter would not install there."""
    platforms = [f"manylinux_2_{n}_x86_64" for n in (28, 27, 17)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", python_version, "--implementation", "cp",
        *(arg for platform in platforms for arg in ("--platform", platform)),
        "-d", str(folder),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=Path(".carry"))
    parser.add_argument("--wheels", action="store_true", help="Also download the keras/namex/optree wheels.")
    parser.add_argument("--python-version", default="3.12", help="The GPU machine's Python, for --wheels.")
    args = parser.parse_args()
    from bench.data import load_data

    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data(args.csv)
    path = pack(data.images, data.labels, data.splits, args.out / "fer2013.u8.xz")
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    if args.wheels:
        import keras

        wheels = [f"keras=={keras.__version__}", "namex", "optree"]
        subprocess.run(wheel_download_command(args.out / "wheels", args.python_version) + wheels, check=True)


if __name__ == "__main__":
    main()
