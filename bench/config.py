"""Recipes: frozen, typed dataclasses, each field with its accepted values and its role (see
:mod:`bench.recipe_load` for TOML, ``--set`` and validation, :mod:`bench.recipe_io` for writing one out).

A resolved recipe is the whole description of one run (as MMEngine's config is of its runner): what
to train (``model.backbone``, ``model.head``), on what (``data.source``), where it is logged
(``run.experiment``), with which seed, and how (data pipeline, phases, schedule). Everything after
the command line reads it alone.

Precedence: command-line options (``--backbone``, ``--data``, ...) > ``--set`` > the recipe file >
the dataclass defaults. A bad key,
type or value raises :class:`BenchError` naming the key, the value received and what is accepted.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError

SUBJECT = "subject"
"""A field's role: it names the run's subject (what it trains, on what, where it is logged), not its method.
:func:`bench.recipe_io.recipe_hash` leaves such fields out, so runs of one recipe on several backbones pool."""

SPEED = "speed"
"""A field's role: it sets how fast a run trains, never what it trains; the recipe hash leaves it out at
every value (see :data:`bench.recipe_io.SPEED_FIELDS` for why each is one)."""


def _opt(
    default: Any,
    *,
    choices: tuple | None = None,
    range: tuple | None = None,  # noqa: A002
    doc: str = "",
    role: str | None = None,
    later: bool = False,
) -> Any:
    """A recipe field: its default, accepted values (``choices``, ``range``), help text, and what it is to
    everything that reads recipes generically: its ``role`` (:data:`SUBJECT`, :data:`SPEED`, or None for
    the method), and whether it was added ``later`` than runs already logged (the hash then leaves it
    out at its default, so those runs keep their hashes). Declared here, on the field, so a new field
    touches this module and the code that uses it, not lists kept elsewhere."""
    meta = {"choices": choices, "range": range, "doc": doc, "role": role, "later": later}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _table(cls: type, *, later: bool = False) -> Any:
    """A nested table of a recipe (``later``: added after runs were logged, as :func:`_opt`'s)."""
    return field(default_factory=cls, metadata={"later": later})


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (Keras preprocessing layers inside the tf.data pipeline)."""

    enabled: bool = _opt(True)
    rotation_degrees: float = _opt(35.0, range=(0, 180))
    shift: float = _opt(0.25, range=(0, 1), doc="max translation, fraction of width/height")
    zoom: float = _opt(0.4, range=(0, 0.9), doc="zoom factor range [1-z, 1+z]")
    shear_degrees: float = _opt(0.4, range=(0, 45), doc="ImageDataGenerator's shear_range was in degrees")
    horizontal_flip: bool = _opt(True)
    brightness: tuple[float, float] = _opt((0.5, 1.5), range=(0, 5), doc="multiplicative brightness range")
    contrast: float = _opt(0.0, range=(0, 1))
    occlusion: float = _opt(
        0.0,
        range=(0, 1),
        doc="random erasing, Keras' RandomErasing factor: each image is erased (one black box, 2-15 % of the face) "
        "with a probability drawn from [0, occlusion], so about occlusion / 2 of the images on average",
    )
    crop_padding: int = _opt(
        0,
        later=True,
        range=(0, 64),
        doc="random crops: pad each side by this many pixels (reflected) and crop back to the image size at a "
        "random offset, per image (0 = off); whole-pixel shifts, no resampling",
    )
    fill_mode: str = _opt("constant", choices=("constant", "reflect", "nearest", "wrap"))
    resample: str = _opt(
        "per_layer",
        later=True,
        choices=("per_layer", "once"),
        doc="per_layer: Keras' RandomRotation, RandomTranslation, RandomZoom and RandomShear, each resampling "
        "the face; once: the same kinds of draw as one affine resampling (ImageDataGenerator's way; sharper "
        "faces, benchmarks/RESULTS.md#evidence-arriaga-resample; its shear is one angle, not an x and a y factor)",
    )


@dataclass(frozen=True)
class MixConfig:
    """Batch-level mixup / cutmix (timm's ``Mixup``): images and their targets (and sample weights, so class
    weights still apply) mixed with another image of the same batch."""

    mixup_alpha: float = _opt(0.0, range=(0, 10), doc="Beta(alpha, alpha) mixing weight for mixup; 0 = off")
    cutmix_alpha: float = _opt(0.0, range=(0, 10), doc="Beta(alpha, alpha) kept area for cutmix; 0 = off")
    prob: float = _opt(1.0, range=(0, 1), doc="probability that a batch is mixed at all")
    switch_prob: float = _opt(0.5, range=(0, 1), doc="with both on: probability a mixed batch uses cutmix")


@dataclass(frozen=True)
class DataConfig:
    source: str = _opt("", role=SUBJECT, doc="FER2013 CSV, image-folder root or synthetic[:N[:SEED]]; --data sets it")
    image_size: int = _opt(48, range=(8, 1024), doc="raised to the backbone's minimum if smaller")
    channel_adapter: str = _opt("repeat", choices=("repeat", "learned"))
    batch_size: int = _opt(32, range=(1, 4096))
    augment: AugmentConfig = _table(AugmentConfig)
    mix: MixConfig = _table(MixConfig, later=True)
    oversample: float = _opt(0.0, range=(0, 1), doc="raise each class to this fraction of the largest (0 = off)")
    dedupe: bool = _opt(False, doc="drop training images that also appear in validation or test")
    max_train: int = _opt(0, range=(0, 10**9), doc="use at most this many training images (0 = all)")
    max_eval: int = _opt(0, range=(0, 10**9), doc="use at most this many val/test images (0 = all)")
    labels: str = _opt(
        "fer2013",
        later=True,
        choices=("fer2013", "ferplus"),
        doc="FER2013's own labels or the FER+ crowd votes (8 classes)",
    )
    targets: str = _opt(
        "majority",
        later=True,
        choices=("majority", "crossentropy"),
        doc="ferplus only: train on the majority label or on the vote distribution (evaluation: majority); "
        "with the distribution, a sample's class weight is its majority class's and label_smoothing mixes "
        "the distribution with the uniform one",
    )
    votes: str = _opt("", role=SUBJECT, doc="the FER+ votes file (labels = ferplus); empty = the one beside the data")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = _opt("", role=SUBJECT, doc="a registered backbone (see bench list); --backbone sets it")
    head: str = _opt("hybrid")
    head_options: dict[str, Any] = _opt({}, doc="per-head option tables, e.g. [model.head_options.hybrid]")
    backbone_options: dict[str, Any] = _opt(
        {},
        later=True,
        doc="per-backbone option tables, e.g. [model.backbone_options.mini_xception] separable_l2 = 0.01",
    )
    weights: str = _opt("none", doc="imagenet, none, or a path to a weights file")
    precision: str = _opt("auto", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"))
    batchnorm_momentum: float = _opt(
        0.0,
        later=True,
        range=(0, 0.9999),
        doc="momentum of every BatchNormalization layer in the backbone; 0 = the backbone's own "
        "(0.9 from scratch, the pretrained model's with weights)",
    )
    batchnorm: str = _opt(
        "keras",
        role=SPEED,
        choices=("keras", "fused", "auto"),
        doc="BatchNormalization of the backbone: keras (Keras' layer), fused (TensorFlow's fused kernel, "
        "the same function and weights, faster; TensorFlow backend only) or auto (fused under TensorFlow, "
        "keras under JAX or PyTorch); a speed setting, left out of the recipe hash",
    )
    batchnorm_stats: str = _opt(
        "moving",
        later=True,
        choices=("moving", "recomputed"),
        doc="the BatchNorm statistics the trained model keeps: moving (Keras' averages over the training "
        "batches, augmented when augmentation is on) or recomputed (after training, the last phase's trainable "
        "BatchNorm layers get averages over one shuffled pass of the un-augmented training images, as "
        "evaluation and inference see faces; bench tune then scores each trial's shipped model after it)",
    )


@dataclass(frozen=True)
class ClassWeightConfig:
    scheme: str = _opt("balanced", choices=("none", "balanced", "power"))
    power: float = _opt(1.0, range=(0, 3), doc="exponent of the balanced weights when scheme = power")
    boost: dict[str, float] = _opt({}, doc="per-class multipliers, e.g. disgust = 3.0")


@dataclass(frozen=True)
class PhaseConfig:
    name: str = _opt("train")
    epochs: int = _opt(10, range=(1, 10_000))
    train: str = _opt("all", choices=("head", "all", "band"))
    band: tuple[float, float] = _opt((0.0, 1.0), range=(0, 1), doc="backbone depth fractions from the top")
    optimizer: str = _opt(
        "adamw",
        choices=("adamw", "adam", "sgd", "sgd_nesterov"),
        doc="sgd: momentum 0.9; sgd_nesterov: Nesterov momentum 0.9 (the published FER2013 recipes')",
    )
    learning_rate: float = _opt(1e-3, range=(0, 1e6))
    weight_decay: float = _opt(0.0, range=(0, 1))
    schedule: str = _opt("constant", choices=("constant", "cosine", "cosine_restarts"))
    warmup_epochs: float = _opt(0.0, range=(0, 10_000))
    min_lr_fraction: float = _opt(0.0, range=(0, 1), doc="cosine floor as a fraction of learning_rate")
    restart_epochs: int = _opt(10, range=(1, 10_000), doc="first cycle length for cosine_restarts")
    label_smoothing: float = _opt(0.0, range=(0, 0.5))
    early_stopping_patience: int = _opt(0, range=(0, 10_000), doc="0 disables early stopping")
    reduce_on_plateau: bool = _opt(False)
    plateau_factor: float = _opt(0.5, range=(0.01, 0.99))
    plateau_patience: int = _opt(5, range=(1, 10_000))
    min_lr: float = _opt(1e-7, range=(0, 1))
    augment: bool = _opt(True, doc="apply the data augmentation (and mixup/cutmix) in this phase")
    ema_decay: float = _opt(
        0.0,
        later=True,
        range=(0, 0.99999),
        doc="exponential moving average of the weights (bench.train.ema.WeightEMA, moved every 4 steps); "
        "the averaged weights are validated, restored, evaluated and saved; 0 = off",
    )


@dataclass(frozen=True)
class RunConfig:
    seed: int = _opt(42, range=(0, 2**31 - 1))
    experiment: str = _opt("", role=SUBJECT, doc="MLflow experiment; empty = the data set's name")
    deterministic: bool = _opt(False)
    budget_minutes: float = _opt(0.0, range=(0, 100_000), doc="0 = no wall-clock budget")
    monitor: str = _opt("val_loss", choices=("val_loss", "val_macro_f1", "val_accuracy"))
    jit_compile: str = _opt("auto", choices=("auto", "on", "off"))
    cache_features: bool = _opt(
        True, doc="head-only phases without augmentation train the head on backbone features computed once"
    )
    steps_per_epoch: int = _opt(
        0,
        range=(0, 10_000_000),
        doc="0 = an epoch is one pass over the training split; N = an epoch is N batches of a repeating "
        "stream, so slow backbones still get several validations and budget checks",
    )
    steps_per_execution: int = _opt(
        1,
        role=SPEED,
        range=(1, 10_000),
        doc="training steps Keras runs per call into the compiled graph: fewer Python round trips between "
        "steps, the same training; must divide steps_per_epoch when that is set. 1 = Keras' own; whether "
        "more pays is measured by benchmarks/cpu_speed.py --ratios (benchmarks/RESULTS.md#evidence-cpu-speed-settings)",
    )
    devices: int = _opt(
        0,
        role=SPEED,
        range=(0, 4096),
        doc="local devices to train on, data-parallel (JAX only, keras.distribution.DataParallel): the global "
        "batch stays data.batch_size, split evenly across them, so the same training up to float reduction "
        "order; 0 = every local device (the GPUs; a CPU is one; TensorFlow and PyTorch: one); a speed "
        "setting, left out of the recipe hash (bench.devices says why)",
    )
    threads_intra: int = _opt(
        0,
        role=SPEED,
        range=(0, 4096),
        doc="TensorFlow's intra-op threads (one op's work split across cores); 0 = TensorFlow's default. "
        "Applied before TensorFlow starts; the same training",
    )
    threads_inter: int = _opt(
        0,
        role=SPEED,
        range=(0, 4096),
        doc="TensorFlow's inter-op threads (independent ops run at once); 0 = TensorFlow's default. "
        "Applied before TensorFlow starts; the same training",
    )


@dataclass(frozen=True)
class EvalConfig:
    """How the trained model is evaluated (val and test): test-time augmentation and calibration."""

    tta: str = _opt(
        "none",
        choices=("none", "flip", "crops"),
        doc="test-time augmentation: none; flip (the face and its mirror, probabilities averaged); crops "
        "(the centre and four corner crops of data.augment.crop_padding, each with its mirror: ten views)",
    )
    calibrate: bool = _opt(
        False,
        doc="fit a softmax temperature on the validation split after training (never the test split); the "
        "saved model carries it, so predict and export give calibrated probabilities",
    )


@dataclass(frozen=True)
class Recipe:
    name: str = _opt("recipe")
    description: str = _opt("")
    data: DataConfig = _table(DataConfig)
    model: ModelConfig = _table(ModelConfig)
    class_weights: ClassWeightConfig = _table(ClassWeightConfig)
    phases: tuple[PhaseConfig, ...] = field(default_factory=lambda: (PhaseConfig(),))
    run: RunConfig = _table(RunConfig)
    eval: EvalConfig = _table(EvalConfig, later=True)
    tune: dict[str, Any] = _opt({}, doc="search space for bench tune")

    def __post_init__(self) -> None:
        for i, phase in enumerate(self.phases):
            if phase.reduce_on_plateau and phase.schedule != "constant":
                raise BenchError(
                    f'phases.{i}.reduce_on_plateau = true needs schedule = "constant" (received '
                    f'schedule = "{phase.schedule}"): a schedule already sets the learning rate'
                )
            if phase.band[0] >= phase.band[1]:
                raise BenchError(f"phases.{i}.band must be [low, high] with low < high; received {list(phase.band)}")
        for kind, tables, example in (
            ("head", self.model.head_options, "hybrid"),
            ("backbone", self.model.backbone_options, "mini_xception"),
        ):
            for name, options in tables.items():
                if not isinstance(options, dict):
                    raise BenchError(
                        f"model.{kind}_options.{name} must be a table of that {kind}'s options, e.g. "
                        f"[model.{kind}_options.{example}]; received {options!r}"
                    )
        if self.data.labels == "fer2013" and (self.data.targets != "majority" or self.data.votes):
            raise BenchError(
                'data.targets = "crossentropy" and data.votes need data.labels = "ferplus" (FER2013 has one '
                "label per image and no votes); add --labels ferplus"
            )
        if not self.phases:
            raise BenchError("a recipe needs at least one [[phases]] table")
        if self.eval.tta == "crops" and not self.data.augment.crop_padding:
            raise BenchError(
                'eval.tta = "crops" needs data.augment.crop_padding > 0 (the corner crops\' shift in pixels; '
                'received 0): set it, e.g. --set data.augment.crop_padding=4, or use eval.tta = "flip"'
            )
        every, chunk = self.run.steps_per_epoch, self.run.steps_per_execution
        if every and every % chunk:
            # Keras would run whole chunks past the epoch's end on a repeating stream: more steps than asked
            raise BenchError(
                f"run.steps_per_execution = {chunk} must divide run.steps_per_epoch = {every}; set "
                f"run.steps_per_epoch = {-(-every // chunk) * chunk} or a steps_per_execution that divides {every}"
            )


def check_class_names(recipe: Recipe, class_names: tuple[str, ...]) -> None:
    """A one-line error unless every class the recipe names (``class_weights.boost``, the hybrid head's
    ``branch_classes``) is one of the data's: the class list comes from the data (8 with FER+, a folder's
    own), so it is checked once the data are loaded, before a model is built."""
    named = {"class_weights.boost": set(recipe.class_weights.boost)}
    branches = recipe.model.head_options.get(recipe.model.head, {}).get("branch_classes")
    if recipe.model.head == "hybrid" and branches is not None:
        named["model.head_options.hybrid.branch_classes"] = set(branches)
    for key, names in named.items():
        unknown = names - set(class_names)
        if unknown:
            raise BenchError(
                f"{key}: unknown class {', '.join(sorted(unknown))}; this data set's classes are "
                f"{', '.join(class_names)}"
            )


# ----------------------------------------------------------------------------- the fields' roles


def _fields(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """Every field of a recipe table by dotted path (``data.augment.resample``), with its type; a nested
    table's own field first, then its fields. Phases are a list of tables: walk :class:`PhaseConfig` itself."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield prefix + f.name, f, hints[f.name]
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], f"{prefix}{f.name}.")


def fields_with_role(role: str, cls: type = Recipe) -> tuple[str, ...]:
    """The dotted paths of ``cls``'s fields declared with ``role`` (:data:`SUBJECT`, :data:`SPEED`)."""
    return tuple(path for path, f, _ in _fields(cls) if f.metadata.get("role") == role)


def later_defaults(cls: type = Recipe) -> dict[str, Any]:
    """The fields of ``cls`` added after runs were logged, by dotted path, with their defaults (a table's
    as a plain dict): what :func:`bench.recipe_io.recipe_hash` leaves out at that value."""
    defaults = {}
    for path, f, typ in _fields(cls):
        if f.metadata.get("later"):
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            defaults[path] = dataclasses.asdict(value) if dataclasses.is_dataclass(typ) else value
    return defaults
