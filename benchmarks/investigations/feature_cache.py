"""Head-only phases on cached backbone features against the full model, for one backbone.

Runs the same head-only, unaugmented phase (the paper recipe's phase 1 with ``augment = false``) twice
from the same start, once through the whole model and once on features computed once, and prints the
wall time of each (feature computation included) and the speed-up. Synthetic faces, no data needed.

    python benchmarks/investigations/feature_cache.py [--backbone resnet50] [--images 3000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run(backbone: str, images: int, epochs: int, cache: bool) -> tuple[float, float]:
    import keras

    from bench.data import load_data
    from bench.models import build_model
    from bench.recipe_load import load_recipe
    from bench.train import Trainer, prepare_splits

    recipe = load_recipe(
        "cpu",
        [
            "phases.0.train=head",
            "phases.0.augment=false",
            f"phases.0.epochs={epochs}",
            "phases.0.early_stopping_patience=0",
            "run.budget_minutes=0",
            "run.steps_per_epoch=0",
            f"run.cache_features={'true' if cache else 'false'}",
        ],
    )
    data = load_data(f"synthetic:{images}:0", cache=False)
    keras.utils.set_random_seed(0)
    model, _ = build_model(
        backbone=backbone,
        head="hybrid",
        image_size=recipe.data.image_size,
        head_options=recipe.model.head_options["hybrid"],
    )
    trainer = Trainer(model, recipe, prepare_splits(data, recipe))
    tic = time.perf_counter()
    result = trainer.run()
    wall = time.perf_counter() - tic
    keras.backend.clear_session()
    return wall, result.history["val_loss"][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    full, loss_full = run(args.backbone, args.images, args.epochs, cache=False)
    cached, loss_cached = run(args.backbone, args.images, args.epochs, cache=True)
    print(
        f"{args.backbone}+hybrid head-only phase, {args.epochs} epochs on {args.images} synthetic faces: "
        f"full model {full:.1f} s, cached features {cached:.1f} s (extraction included), "
        f"speed-up {full / cached:.1f}x; "
        f"final val loss {loss_full:.4f} vs {loss_cached:.4f}"
    )


if __name__ == "__main__":
    main()
