"""Before training: seeding, the precision policy, and the model a recipe asks for."""

from __future__ import annotations

import keras

from bench.config import Recipe


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and the backend; ``deterministic`` also makes TensorFlow ops deterministic (slower)."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def resolve_precision(precision: str) -> str:
    """``auto`` = mixed_float16 on a GPU, float32 on CPU (bfloat16 helps some CPU models, not all)."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


def build_for_recipe(recipe: Recipe, class_names: tuple[str, ...] | None = None):
    """Seed, resolve the precision policy and build the model a recipe asks for: (model, spec, precision).

    ``class_names``: the data's classes (FER+ has 8); the head outputs one probability each and the saved
    model keeps the names. None: FER2013's 7."""
    from bench.models import build_model

    seed_everything(recipe.run.seed, recipe.run.deterministic)
    precision = resolve_precision(recipe.model.precision)
    head = recipe.model.head
    model, spec = build_model(
        backbone=recipe.model.backbone,
        head=head,
        image_size=recipe.data.image_size,
        weights=recipe.model.weights,
        channel_adapter=recipe.data.channel_adapter,
        head_options=recipe.model.head_options.get(head, {}),
        precision=precision,
        class_names=class_names,
    )
    return model, spec, precision
