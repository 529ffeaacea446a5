"""Before training: seeding, the precision policy, and the model a recipe asks for."""

from __future__ import annotations

import keras

from bench.config import Recipe


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and the backend; ``deterministic`` also makes TensorFlow ops deterministic (slower).

    JAX needs no switch: its ops are deterministic for a given seed on CPU, and Keras threads the seed
    through every random op."""
    from bench.backend import is_tensorflow

    keras.utils.set_random_seed(seed)
    if deterministic and is_tensorflow():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def resolve_precision(precision: str) -> str:
    """``auto`` = mixed precision on a GPU, float32 on CPU (bfloat16 helps some CPU models, not all).

    On a GPU: mixed_float16 under TensorFlow (as measured before), mixed_bfloat16 elsewhere, which needs
    no loss scaling."""
    if precision != "auto":
        return precision
    from bench.backend import accelerators, is_tensorflow

    if not accelerators():
        return "float32"
    return "mixed_float16" if is_tensorflow() else "mixed_bfloat16"


def build_for_recipe(recipe: Recipe, class_names: tuple[str, ...] | None = None):
    """Set TensorFlow's threads, seed, resolve the precision policy and build the model a recipe asks for:
    (model, spec, precision). Refuses a model whose training would crash TensorFlow's oneDNN kernels
    (:mod:`bench.train.known_faults`).

    ``class_names``: the data's classes (FER+ has 8); the head outputs one probability each and the saved
    model keeps the names. None: FER2013's 7."""
    from bench.models import build_model
    from bench.runtime import set_threads
    from bench.train.known_faults import refuse_onednn_faults

    set_threads(recipe.run.threads_intra, recipe.run.threads_inter)  # before the first op starts TensorFlow
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
        backbone_options=recipe.model.backbone_options.get(recipe.model.backbone, {}),
        precision=precision,
        class_names=class_names,
        batchnorm=recipe.model.batchnorm,
    )
    if recipe.model.batchnorm_momentum:
        from bench.backbones._keras_apps import set_batchnorm_momentum

        set_batchnorm_momentum(model.backbone, recipe.model.batchnorm_momentum)
    refuse_onednn_faults(model)  # a one-line error now, not a crash in the first training step
    return model, spec, precision
