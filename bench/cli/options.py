"""Options several commands share: one definition each, so their names, defaults and help cannot drift."""

from __future__ import annotations

import click

MAX_SYNTHETIC_FACES = 100_000  # bench.data.synthetic.MAX_N (kept here so that `bench --help` imports no numpy)
MAX_IMAGE_SIZE = 1024  # the largest model.image_size a recipe accepts (bench.config): profile measures what run trains
MAX_BATCH = 4096  # the largest data.batch_size a recipe accepts (bench.config)
MAX_BOOTSTRAP = 10_000  # resamples x test images x 8 bytes, several times over: 10,000 on FER2013 is ~1 GB

DATA_HELP = "FER2013 CSV (.csv/.csv.gz), image-folder root, or synthetic[:N[:SEED]] (made-up faces, for trying bench)."

HEAD_OPTION = click.option(
    "--head", default=None, help="Head name (default: the recipe's model.head, hybrid in every shipped recipe)."
)
RECIPE_OPTION = click.option(
    "--recipe", default="cpu", show_default=True, help="Recipe name in experiments/ or a .toml path."
)
TRACKING_URI_OPTION = click.option(
    "--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite:///mlruns/mlflow.db)."
)
LABELS_OPTION = click.option(
    "--labels",
    type=click.Choice(["fer2013", "ferplus"]),
    default=None,
    help="Label set of FER2013 data: its own 7 labels or the FER+ votes (8 classes; sets data.labels).",
)
EXPERIMENT_OPTION = click.option("--experiment", default=None, help="MLflow experiment (default: the data set's name).")
DEVICES_HELP = (
    "Local devices to train on, data-parallel, under JAX (run.devices; 0 = all; the global batch is "
    "data.batch_size, split evenly)."
)
QUIET_OPTION_HELP = "No progress line, only each run's result."


def examples(*commands: str) -> str:
    """A command's ``--help`` epilog: example command lines, kept as written (click's ``\\b`` marker stops
    it from re-wrapping them)."""
    return "\b\nExamples:\n" + "\n".join(f"  {c}" for c in commands)


def set_option(help_text: str = "Override a recipe field."):
    """``--set KEY=VALUE`` (repeatable): a recipe override, parsed by :func:`bench.recipe_load.apply_override`."""
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=help_text)


def devices_option(more_help: str = ""):
    """``--devices N``: the recipe's ``run.devices`` (:mod:`bench.devices`), which the command passes on by name
    to :func:`bench.plan.resolve_recipe`; above 1 under TensorFlow or PyTorch it is a one-line error naming JAX
    (:func:`bench.plan.check_runnable`). ``more_help`` says what it means for this command."""
    help_text = f"{DEVICES_HELP} {more_help}".strip()
    return click.option("--devices", type=click.IntRange(0, 4096), default=None, help=help_text)


def choice_option(flag: str, choices, help_text: str, dest: str | None = None):
    """An option that takes one of ``choices``, the first being the default (shown in ``--help``)."""
    names = (flag, dest) if dest else (flag,)
    return click.option(*names, type=click.Choice(list(choices)), default=choices[0], show_default=True, help=help_text)


def format_option(*choices: str):
    """``--format`` with the output styles a command offers, the first being the default."""
    return choice_option("--format", choices, "Output style.", dest="fmt")


def saved_model_options(fn=None, *, keras_only: bool = False):
    """``--run RUN_ID`` / ``--model PATH`` / ``--tracking-uri``: where a trained model comes from. ``--model``
    takes a .keras file, or a .onnx file from ``bench export --to onnx`` unless ``keras_only`` (commands that
    need Keras' layers: export, explain). Used bare (``@saved_model_options``) or called."""

    def decorate(fn):
        model_help = "A .keras file." if keras_only else "A .keras file, or a .onnx file from bench export --to onnx."
        fn = TRACKING_URI_OPTION(fn)
        fn = click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False), help=model_help)(fn)
        return click.option(
            "--run", "run_id", default=None, metavar="RUN_ID", help="Use the model.keras of this bench run."
        )(fn)

    return decorate(fn) if fn is not None else decorate


def is_onnx_path(model_path) -> bool:
    """Whether ``--model`` names a .onnx file: ONNX Runtime runs it, so a command need not import TensorFlow."""
    return bool(model_path) and str(model_path).lower().endswith(".onnx")


def load_saved_model(run_id, model_path, tracking_uri, *, keras_only: bool = False):
    """The model :func:`saved_model_options` name: exactly one of a run's model.keras or a file, a ``.onnx``
    one run by ONNX Runtime (:func:`bench.inference.classifier.load_model_file`) unless ``keras_only``."""
    from bench.errors import BenchError
    from bench.inference.classifier import load_keras_model, load_model_file, model_from_run

    if bool(run_id) == bool(model_path):
        files = "PATH.keras" if keras_only else "PATH (a .keras or .onnx file)"
        raise BenchError(f"give exactly one of --run RUN_ID or --model {files}")
    if run_id:
        return model_from_run(run_id, tracking_uri)
    if keras_only and is_onnx_path(model_path):
        raise BenchError(
            f"this command needs the Keras model (.keras file or --run RUN_ID), not '{model_path}': "
            "ONNX files run in bench predict and bench live"
        )
    return load_keras_model(model_path) if keras_only else load_model_file(model_path)


def face_options(fn):
    """``--margin``, ``--min-face``, ``--detect-width``, ``--window``, ``--tta``: how ``bench predict`` and
    ``bench live`` find, crop, classify and smooth faces (one definition: the two commands cannot drift)."""
    options = [
        click.option("--margin", default=0.15, show_default=True, type=click.FloatRange(0, 1), help="Crop margin."),
        click.option(
            "--min-face", default=30, show_default=True, type=click.IntRange(8), help="Smallest face, pixels."
        ),
        click.option(
            "--detect-width",
            default=320,
            show_default=True,
            type=click.IntRange(0),
            help="Search for faces at this frame width (0 = full size; faster when smaller).",
        ),
        click.option(
            "--window", default=10, show_default=True, type=click.IntRange(1), help="Video: label mode window."
        ),
        click.option(
            "--tta",
            default=None,
            type=click.Choice(["none", "flip", "crops"]),
            help="Test-time augmentation: average each face over its mirror (flip) or ten crops (crops, --run only). "
            "Default: the run's recipe.eval.tta with --run, else none.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def run_options(*, data_help: str, data_required: bool = False, set_help: str = "Override a recipe field."):
    """``--recipe``, ``--set``, ``--head``, ``--data``, ``--labels``, ``--experiment``: the options that describe a run.
    Each but ``--recipe``/``--set`` overrides one recipe field (:data:`bench.plan.OPTION_FIELDS`), so the
    command passes them on by name to :func:`bench.plan.resolve_recipe`."""
    options = [
        RECIPE_OPTION,
        set_option(set_help),
        HEAD_OPTION,
        click.option("--data", default=None, required=data_required, help=data_help),
        LABELS_OPTION,
        EXPERIMENT_OPTION,
    ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate
