"""Input-pipeline throughput and FER2013 CSV load times.

Prints: augmented images/s of the training pipeline (full augmentation as in the cpu recipe plus
contrast, batch 64, FER2013-sized arrays), and the cold and warm load time of the full CSV when it
is present (../shared/data/fer2013/fer2013.csv.gz or --csv PATH).

    python benchmarks/investigations/input_pipeline.py [--csv PATH] [--batches 150]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

DEFAULT_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def pipeline_throughput(n_batches: int, batch_size: int = 64) -> float:
    from bench.data.augment import build_augmenter
    from bench.data.pipeline import make_dataset
    from bench.recipe_load import load_recipe

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (28709, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 28709)
    augment = load_recipe("cpu", ["data.augment.contrast=0.2"]).data.augment
    ds = make_dataset(
        images,
        labels,
        batch_size=batch_size,
        weights=np.ones(7),
        augmenter=build_augmenter(augment, 0),
        shuffle=True,
        seed=0,
    ).repeat()
    it = iter(ds)
    for _ in range(10):  # warm-up: tracing and the shuffle buffer
        next(it)
    tic = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return n_batches * batch_size / (time.perf_counter() - tic)


def csv_load_times(path: Path) -> tuple[float, float]:
    from bench.data import load_data

    with tempfile.TemporaryDirectory() as cache:
        os.environ["BENCH_CACHE_DIR"] = cache
        tic = time.perf_counter()
        load_data(path)
        cold = time.perf_counter() - tic
        tic = time.perf_counter()
        load_data(path)
        return cold, time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--batches", type=int, default=150)
    args = parser.parse_args()
    rate = pipeline_throughput(args.batches)
    print(f"augmented training pipeline: {rate:,.0f} images/s (batch 64, 48x48, cpu-recipe augmentation + contrast)")
    if args.csv.exists():
        cold, warm = csv_load_times(args.csv)
        print(f"full CSV load ({args.csv.name}): cold {cold:.1f} s (parse + cache), warm {warm:.2f} s (cache)")
    else:
        print(f"full CSV load: skipped ({args.csv} not found)")


if __name__ == "__main__":
    main()
