"""One-factor-at-a-time ablation of the cpu recipe's defaults on real data, through bench itself.

Every variant is a fixed base (``BASE``: the cpu recipe as it stood when the ablation was run, pinned
here so the study reproduces whatever cpu.toml says later) with one change (``--set``), trained by
``bench run`` with the same
seed and the same budget of training images (``--epochs`` epochs of 9,600 images, the recipe's
150 batches of 64; variants with another batch size keep 9,600 images per epoch), so other jobs on
the machine change how long a variant takes but not what it learns. Each is named
``ablation-<variant>`` so that ``bench compare`` lists it as its own row with a 95 % bootstrap CI and a
paired test against the leader. Results go to the MLflow experiment given by ``--experiment``.

    python benchmarks/investigations/ablation_cpu.py --data ../shared/data/fer2013/fer2013.csv.gz --epochs 6
    python benchmarks/investigations/ablation_cpu.py ... --only base,cw_balanced --head hybrid

Prints each finished run's summary line as it comes, then the leaderboard (markdown).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

PAPER_AUGMENT = (
    "data.augment.enabled=true",
    "data.augment.rotation_degrees=35.0",
    "data.augment.shift=0.25",
    "data.augment.zoom=0.4",
    "data.augment.brightness=[0.5, 1.5]",
    'data.augment.fill_mode="constant"',
)

BASE = (
    "data.augment.enabled=false",
    "data.augment.occlusion=0.0",
    "class_weights.scheme=none",
    "data.batch_size=64",
    "phases.0.optimizer=adam",
    "phases.0.learning_rate=1e-3",
    "phases.0.weight_decay=0.0",
    "phases.0.schedule=constant",
    "phases.0.warmup_epochs=0",
    "phases.0.label_smoothing=0.0",
    "phases.0.early_stopping_patience=0",
    "model.head_options.mlp.dropout=0.5",
    "run.monitor=val_loss",
    'model.batchnorm="keras"',  # the ablation's kernel (cpu.toml's "auto" came later; the fused arm sets it)
)
"""The ablation's starting point ("base"): Adam at a constant 1e-3, batch 64, no augmentation, no class
weights, the seed heads' dropout, no early stopping (the best epoch by validation loss is restored)."""

RECIPE_CHANGES = (
    "phases.0.optimizer=adamw",
    "phases.0.weight_decay=1e-3",
    "phases.0.schedule=cosine",
    "phases.0.warmup_epochs=1",
    "phases.0.min_lr_fraction=0.01",
    "model.head_options.mlp.dropout=0.2",
    "model.head_options.hybrid.dropout=0.2",
)
"""The first pass's two winners together: what the cpu recipe adopted (its training settings, on BASE)."""

VARIANTS: dict[str, tuple[str, ...]] = {
    "base": (),
    "aug_mild": ("data.augment.enabled=true",),
    "aug_mild_occlusion": ("data.augment.enabled=true", "data.augment.occlusion=0.25"),
    "aug_paper": PAPER_AUGMENT,
    "cw_balanced": ("class_weights.scheme=balanced",),
    "cw_sqrt": ("class_weights.scheme=power", "class_weights.power=0.5"),
    "bs32_lr5e-4": ("data.batch_size=32", "phases.0.learning_rate=5e-4", "run.steps_per_epoch=300"),
    "bs128_lr2e-3": ("data.batch_size=128", "phases.0.learning_rate=2e-3", "run.steps_per_epoch=75"),
    "label_smoothing": ("phases.0.label_smoothing=0.1",),
    "dropout_0.2": ("model.head_options.mlp.dropout=0.2", "model.head_options.hybrid.dropout=0.2"),
    "adamw_cosine": (
        "phases.0.optimizer=adamw",
        "phases.0.weight_decay=1e-3",
        "phases.0.schedule=cosine",
        "phases.0.warmup_epochs=1",
        "phases.0.min_lr_fraction=0.01",
    ),
    "monitor_f1": ("run.monitor=val_macro_f1",),
    # The two single-factor winners of the first pass together (is the gain additive?).
    "adamw_cosine+dropout_0.2": RECIPE_CHANGES,
    # Session 5: BatchNorm momentum on top of the recipe the first pass chose (adamw_cosine+dropout_0.2).
    # 0.9 is bench's from-scratch default; 0.99 is Keras' own; 0.8 follows the weights faster still.
    "recipe+bn_0.99": (*RECIPE_CHANGES, "model.batchnorm_momentum=0.99"),
    "recipe+bn_0.8": (*RECIPE_CHANGES, "model.batchnorm_momentum=0.8"),
    # Not an accuracy factor: the same function in a fused kernel (tests/test_batchnorm.py); the run's
    # images/s against "adamw_cosine+dropout_0.2" measures its speed in the trainer, the macro-F1 its parity.
    "recipe+fused_bn": (*RECIPE_CHANGES, 'model.batchnorm="fused"'),
    # Full passes over FER2013's 28,709 training images: 2 of them ~ 6 epochs of 9,600.
    "full_pass_epochs": ("run.steps_per_epoch=0", "phases.0.epochs=2"),
    "early_stop_8": ("phases.0.early_stopping_patience=8",),
}
"""Each variant's changes from the cpu recipe."""

BENCH = str(Path(sys.executable).with_name("bench"))
"""The bench command installed beside this Python (the project's .venv)."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--backbone", default="baseline_cnn")
    ap.add_argument("--head", default="mlp")
    ap.add_argument("--epochs", type=int, default=6, help="epochs of 9,600 training images per variant")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--experiment", default="fer2013-ablation")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--old-recipe", default="", help="also run this recipe file unchanged, as 'reference'")
    args = ap.parse_args()
    chosen = [v for v in args.only.split(",") if v] or list(VARIANTS)
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        print(f"error: unknown variant {unknown[0]}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    common = ["--backbone", args.backbone, "--head", args.head, "--data", args.data, "--seed", str(args.seed)]
    common += ["--experiment", args.experiment, "--no-save-model"]
    common += ["--tracking-uri", args.tracking_uri] if args.tracking_uri else []
    jobs = [(v, args.recipe, VARIANTS[v]) for v in chosen]
    if args.old_recipe:
        jobs.insert(1, ("reference", args.old_recipe, ()))
    for name, recipe, changes in jobs:
        budget = ["run.budget_minutes=0", f"phases.0.epochs={args.epochs}", "run.steps_per_epoch=150"]
        if name == "reference":  # the old recipe's own batch size, 32: 300 of its batches are 9,600 images
            budget[-1] = "run.steps_per_epoch=300"
        sets = [f"name=ablation-{name}", *budget, *(() if name == "reference" else BASE), *changes]
        cmd = [BENCH, "run", "--recipe", recipe, *common, *(x for s in sets for x in ("--set", s))]
        print(f"== {name}: {' '.join(changes) or '(the recipe as is)'}", flush=True)
        tic = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        summary = [line for line in done.stdout.splitlines() if "macro_f1=" in line]
        print(*(summary or [done.stdout[-400:], done.stderr[-800:]]), sep="\n", flush=True)
        print(f"   exit {done.returncode}, {time.perf_counter() - tic:.0f} s wall", flush=True)
    board = [BENCH, "compare", "--experiment", args.experiment, "--format", "markdown"]
    board += ["--tracking-uri", args.tracking_uri] if args.tracking_uri else []
    print(subprocess.run(board, capture_output=True, text=True).stdout, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
