"""The ``bench`` command line: a thin click group over the modules. Heavy imports (TensorFlow, MLflow,
Optuna) happen inside command bodies so that ``bench --help`` answers at once."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from pathlib import Path

import click

from bench.errors import BenchError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (kill, a scheduler's stop) ends a command like Ctrl-C: runs are marked KILLED, not left
    RUNNING. Background jobs often ignore SIGINT, so SIGTERM is how they are stopped."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. under some test runners)
        pass


def _load_tensorflow(verbose: int = 0) -> None:
    """Import TensorFlow without its C++ start-up lines (kept with -v or TF_CPP_MIN_LOG_LEVEL=0) and
    without Python-side notices (retracing after each recompile) a user cannot act on."""
    import logging

    from bench.runtime import import_tensorflow_quietly

    import_tensorflow_quietly(verbose > 0 or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def friendly_errors(fn):
    """Turn BenchError and OSError (a full disk, a read-only folder) into one line on stderr (exit 2)
    and Ctrl-C into exit 130, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _terminate_like_ctrl_c()
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            from bench.errors import os_error_text

            click.echo(f"error: {os_error_text(exc)}; check the path, its permissions and free disk space", err=True)
            sys.exit(2)
        except KeyboardInterrupt as exc:
            click.echo(str(exc) if str(exc) else "interrupted", err=True)
            sys.exit(130)

    return wrapper


# Options several commands share: one definition each, so their names, defaults and help cannot drift.
HEAD_OPTION = click.option(
    "--head", default=None, help="Head name (default: the recipe's model.head, hybrid in every shipped recipe)."
)
RECIPE_OPTION = click.option(
    "--recipe", default="cpu", show_default=True, help="Recipe name in experiments/ or a .toml path."
)
TRACKING_URI_OPTION = click.option(
    "--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite:///mlruns/mlflow.db)."
)
DATA_HELP = "FER2013 CSV (.csv/.csv.gz), image-folder root, or synthetic[:N[:SEED]] (made-up faces, for trying bench)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bench")
def cli():
    """bench: train and compare FER backbones on FER2013 with one recipe."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not "Creating initial MLflow database tables..."


# ----------------------------------------------------------------------------- data


@cli.group()
def data():
    """Inspect data sets and make synthetic ones."""


@data.command("check")
@click.option(
    "--data",
    "data_spec",
    default="synthetic",
    show_default=True,
    help="FER2013 CSV (.csv/.csv.gz), image-folder root, or synthetic[:N[:SEED]].",
)
@click.option("--skip-bad", is_flag=True, help="Drop malformed rows / unreadable images instead of failing.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output style."
)
@friendly_errors
def data_check(data_spec, skip_bad, fmt):
    """Class counts per split, imbalance, class weights, duplicates and blank images."""
    from bench.data import load_data
    from bench.data.checks import data_report
    from bench.reports import render_data_report

    report = data_report(load_data(data_spec, skip_bad=skip_bad))
    click.echo(json.dumps(report, indent=2) if fmt == "json" else render_data_report(report))


@data.command("synth")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output CSV (.csv or .csv.gz).")
@click.option("--n", default=4000, show_default=True, type=click.IntRange(1), help="Number of faces.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same faces.")
@friendly_errors
def data_synth(out, n, seed):
    """Write N synthetic faces (not FER2013) in the Kaggle CSV schema."""
    from bench.data.synthetic import write_csv

    path = write_csv(out, n, seed)
    click.echo(f"wrote {n} synthetic faces to {path}")


# ----------------------------------------------------------------------------- models


@cli.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output style."
)
@click.option("--refresh", is_flag=True, help="Rebuild the cached catalog (done by itself when a model changes).")
@friendly_errors
def list_cmd(fmt, refresh):
    """Registered backbones and heads.

    The parameter counts need every backbone built once (TensorFlow loads); the catalog is then cached
    and later listings take milliseconds.
    """
    from bench.catalog import cached_model_catalog
    from bench.reports import render_catalog

    catalog = cached_model_catalog(refresh=refresh)
    click.echo(json.dumps(catalog, indent=2) if fmt == "json" else render_catalog(catalog))


# ----------------------------------------------------------------------------- run


@cli.command()
@click.option("--backbone", "backbones", multiple=True, help="Backbone name (repeatable), or 'all'.")
@HEAD_OPTION
@RECIPE_OPTION
@click.option(
    "--data",
    "data_spec",
    default=None,
    help=DATA_HELP + " Required, except with --resume (the run knows its data).",
)
@click.option("--weights", default=None, help="imagenet, none, or a weights file (overrides the recipe).")
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed (repeatable: one run per seed).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field.")
@click.option("--experiment", default=None, help="MLflow experiment (default: the data set's name).")
@TRACKING_URI_OPTION
@click.option("--resume", "resume_run_id", default=None, metavar="RUN_ID", help="Continue an interrupted run.")
@click.option("--deterministic", is_flag=True, help="Deterministic ops (slower); same seed, same metrics.")
@click.option("--no-save-model", is_flag=True, help="Do not log the trained model as model.keras.")
@click.option("--skip-bad", is_flag=True, help="Drop malformed data rows instead of failing.")
@click.option("-v", "--verbose", count=True, help="Show Keras progress (-v per epoch, -vv per step).")
@click.option("-q", "--quiet", is_flag=True, help="No progress line, only each run's result.")
@friendly_errors
def run(
    backbones,
    head,
    recipe,
    data_spec,
    weights,
    seeds,
    overrides,
    experiment,
    tracking_uri,
    resume_run_id,
    deterministic,
    no_save_model,
    skip_bad,
    verbose,
    quiet,
):
    """Train, evaluate and log backbone(s) + head with one recipe."""
    from dataclasses import replace

    from bench.data import load_data
    from bench.runner import resume_request, run_one, summary_line

    keras_verbose = {0: 0, 1: 2, 2: 1}.get(verbose, 1)
    if resume_run_id:
        req, source = resume_request(resume_run_id, tracking_uri, save_model=not no_save_model)
        req = replace(req, verbose=keras_verbose)
        _load_tensorflow(verbose)
        requests = [req]
        data = load_data(source, skip_bad=skip_bad, seed=req.recipe.run.seed)
    else:
        requests, data = _plan_runs(
            backbones,
            head,
            recipe,
            data_spec,
            weights,
            seeds,
            overrides,
            experiment,
            tracking_uri,
            deterministic,
            no_save_model,
            skip_bad,
            keras_verbose,
        )
    click.echo(f"data: {data.source} ({data.split_sizes()}), {data.protocol}")
    summaries = []
    for i, req in enumerate(requests):
        click.echo(f"== {req.backbone} + {req.head}, recipe {req.recipe.name}, seed {req.recipe.run.seed}")
        line = (
            None
            if quiet or verbose
            else ProgressLine(f"[{i + 1}/{len(requests)}] {req.backbone}+{req.head} s{req.recipe.run.seed}")
        )
        try:
            summary = run_one(replace(req, progress=line), data)
        finally:
            if line is not None:
                line.close()
        for note in summary.notes:
            click.echo(f"note: {note}")
        click.echo(summary_line(summary))
        summaries.append(summary)
    if summaries:
        from bench.tracking import ui_command

        click.echo(f"open the runs with: {ui_command(summaries[0].tracking_uri)}")


class ProgressLine:
    """Training progress on stderr: one line rewritten in place on a terminal; elsewhere (a log file, a
    pipe) one plain line per epoch, so logs stay readable."""

    def __init__(self, prefix: str, stream=None):
        self.prefix, self.stream = prefix, stream or sys.stderr
        self.live = self.stream.isatty()
        self.width = 0

    def __call__(self, status: dict) -> None:
        from bench.reports import format_progress

        text = f"{self.prefix} | {format_progress(status)}"
        if self.live:
            # Wider than the terminal, a line wraps and "\r" rewrites only its last row: keep it to one row.
            text = text[: shutil.get_terminal_size().columns - 1]
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        elif status["epoch_end"]:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line, so what is printed next starts on its own line."""
        if self.live and self.width:
            self.stream.write("\n")
            self.stream.flush()
        self.width = 0


def _plan_runs(
    backbones,
    head,
    recipe_name,
    data_spec,
    weights,
    seeds,
    overrides,
    experiment,
    tracking_uri,
    deterministic,
    no_save_model,
    skip_bad,
    verbose,
):
    from dataclasses import replace

    from bench.config import load_recipe
    from bench.data import load_data
    from bench.registry import BACKBONES, HEADS
    from bench.runner import RunRequest
    from bench.tracking import check_store

    if not backbones:
        raise BenchError("name at least one --backbone (or --backbone all); see `bench list`")
    if data_spec is None:
        raise BenchError("--data is required: a FER2013 CSV, an image-folder root, or synthetic to try bench")
    extra = list(overrides)
    if weights:
        extra.append(f'model.weights="{weights}"')
    if deterministic:
        extra.append("run.deterministic=true")
    base = load_recipe(recipe_name, extra)  # first: a recipe or --set typo is reported before TensorFlow loads
    head = head or base.model.head
    names = BACKBONES.known_names() if "all" in backbones else list(dict.fromkeys(backbones))
    for name in names:
        BACKBONES.check(name)
    HEADS.check(head)
    check_store(tracking_uri)
    _load_tensorflow(verbose)
    recipes = [replace(base, run=replace(base.run, seed=s)) for s in seeds] if seeds else [base]
    data = load_data(data_spec, skip_bad=skip_bad, seed=base.run.seed)
    return [
        RunRequest(b, head, r, experiment or data.name, tracking_uri, not no_save_model, verbose=verbose)
        for b in names
        for r in recipes
    ], data


# ----------------------------------------------------------------------------- compare


@cli.command()
@click.option("--experiment", "experiments", multiple=True, help="MLflow experiment(s) (repeatable).")
@click.option(
    "--data",
    "data_name",
    default=None,
    help="Name the experiment after this data set, as bench run does (default: the experiment run last).",
)
@TRACKING_URI_OPTION
@click.option(
    "--metric",
    type=click.Choice(["test", "val"]),
    default="test",
    show_default=True,
    help="Rank on the test or the validation split.",
)
@click.option("--sort", default="macro_f1", show_default=True, help="Metric to sort by.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Keep runs whose param/tag matches.")
@click.option("--all", "include_all", is_flag=True, help="Include FAILED / KILLED / unfinished runs.")
@click.option("--reference", type=click.Choice(["paper"]), default=None, help="Add the paper's reported row.")
@click.option(
    "--bootstrap", default=1000, show_default=True, type=click.IntRange(10), help="Bootstrap resamples for the CIs."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap resamples.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output style.",
)
@click.option("--wide", is_flag=True, help="Per-class recalls in the main table.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to FILE instead of stdout.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Save plots to FILE.png.")
@click.option("--log", "log_run", is_flag=True, help="Log table and plots to a `leaderboard` MLflow run.")
@friendly_errors
def compare(
    experiments,
    data_name,
    tracking_uri,
    metric,
    sort,
    filters,
    include_all,
    reference,
    bootstrap,
    seed,
    fmt,
    wide,
    out,
    plot_path,
    log_run,
):
    """The leaderboard: which backbone wins, at what cost, with what confidence."""
    from pathlib import Path

    from bench.compare import build_leaderboard
    from bench.leaderboard_render import plot, render

    pairs = {}
    for item in filters:
        if "=" not in item:
            raise BenchError(f"--filter '{item}': expected KEY=VALUE, e.g. --filter head=hybrid")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value.strip()
    if experiments:
        names = list(experiments)
    elif data_name:
        from bench.data.dataset import dataset_name

        names = [dataset_name(data_name)]
    else:
        from bench.tracking import latest_experiment

        names = [latest_experiment(tracking_uri)]
        click.echo(f"experiment: {names[0]} (the one run last; choose with --experiment)", err=True)
    board = build_leaderboard(
        names,
        uri=tracking_uri,
        split=metric,
        sort=sort,
        n_boot=bootstrap,
        seed=seed,
        include_all=include_all,
        filters=pairs,
        reference=reference == "paper",
    )
    text = render(board, fmt, wide)
    if out:
        Path(out).write_text(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text)
    files = []
    if plot_path:
        files.append(plot(board, Path(plot_path)))
        click.echo(f"wrote {plot_path}")
    if log_run:
        import tempfile

        from bench.tracking import log_leaderboard

        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "leaderboard.md"
            table.write_text(render(board, "markdown"))
            (Path(tmp) / "leaderboard.csv").write_text(render(board, "csv"))
            if not files:
                files.append(plot(board, Path(tmp) / "leaderboard.png"))
            run_id = log_leaderboard(
                names[0],
                [table, Path(tmp) / "leaderboard.csv", *files],
                {"n_configurations": len(board.table)},
                tracking_uri,
            )
        click.echo(f"logged the leaderboard as run {run_id} in experiment '{names[0]}'")


# ----------------------------------------------------------------------------- profile


@cli.command("profile")
@click.option("--backbone", "backbones", multiple=True, required=True, help="Backbone name (repeatable) or 'all'.")
@click.option("--head", default="hybrid", show_default=True, help="Head name (see bench list).")
@click.option(
    "--image-size", default=48, show_default=True, type=click.IntRange(8), help="Input side in pixels (upscaled)."
)
@click.option("--batch", default=32, show_default=True, type=click.IntRange(1), help="Training batch size.")
@click.option("--recipe", default="cpu", show_default=True, help="Recipe whose head options and phases are used.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0), help="Untimed steps first.")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(1), help="Timed steps per figure.")
@click.option(
    "--precision",
    type=click.Choice(["float32", "mixed_bfloat16", "mixed_float16"]),
    default="float32",
    show_default=True,
    help="Keras dtype policy to measure under.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output style."
)
@friendly_errors
def profile_cmd(backbones, head, image_size, batch, recipe, warmup, steps, precision, fmt):
    """Parameters, FLOPs, throughput, latency, memory and file size of backbone + head."""
    from bench.config import load_recipe
    from bench.profile import profile
    from bench.registry import BACKBONES, HEADS
    from bench.reports import render_profiles

    names = BACKBONES.known_names() if "all" in backbones else list(dict.fromkeys(backbones))
    for name in names:
        BACKBONES.check(name)
    HEADS.check(head)
    load_recipe(recipe)  # a typo fails here, before TensorFlow loads
    _load_tensorflow()
    results = [
        profile(
            n,
            head,
            image_size=image_size,
            recipe_name=recipe,
            train_batch=batch,
            warmup=warmup,
            steps=steps,
            precision=precision,
        )
        for n in names
    ]
    click.echo(json.dumps(results, indent=2) if fmt == "json" else render_profiles(results))


# ----------------------------------------------------------------------------- tune


@cli.command()
@click.option("--backbone", required=True, help="Backbone name (see bench list).")
@HEAD_OPTION
@RECIPE_OPTION
@click.option(
    "--data",
    "data_spec",
    required=True,
    help=DATA_HELP,
)
@click.option("--trials", required=True, type=click.IntRange(1), help="Total trials of the study (all workers).")
@click.option(
    "--timeout",
    "timeout_minutes",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Stop starting trials after MIN minutes.",
)
@click.option("--storage", default=None, help="Optuna storage URL (default: sqlite:///mlruns/optuna.db).")
@click.option("--study", default=None, help="Study name (default: BACKBONE-HEAD-RECIPE). Same name = same study.")
@click.option(
    "--sampler", type=click.Choice(["tpe", "random"]), default="tpe", show_default=True, help="Optuna sampler."
)
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    default="median",
    show_default=True,
    help="Stops trials that trail the others.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Sampler seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field (tune.* too).")
@click.option("--experiment", default=None, help="MLflow experiment (default: the data set's name).")
@TRACKING_URI_OPTION
@click.option("--final", is_flag=True, help="Then train the tuned recipe as a normal run and report test metrics.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line and no line per trial, only the result.")
@friendly_errors
def tune(
    backbone,
    head,
    recipe,
    data_spec,
    trials,
    timeout_minutes,
    storage,
    study,
    sampler,
    pruner,
    seed,
    overrides,
    experiment,
    tracking_uri,
    final,
    quiet,
):
    """Tune class weights, learning rates and regularization with Optuna (validation macro-F1)."""
    from bench.config import load_recipe
    from bench.data import load_data
    from bench.registry import BACKBONES, HEADS
    from bench.tracking import check_store
    from bench.tune import TuneRequest, run_study, search_space

    base = load_recipe(recipe, list(overrides))
    head = head or base.model.head
    BACKBONES.check(backbone)
    HEADS.check(head)
    search_space(base, head)  # a bad [tune] table fails before TensorFlow loads
    check_store(tracking_uri)
    _load_tensorflow()
    data = load_data(data_spec, seed=base.run.seed)
    line = None if quiet else ProgressLine(f"tuning {backbone}+{head}")

    def on_trial(status):
        from bench.reports import format_trial

        line.close()
        click.echo(format_trial(status), err=True)

    req = TuneRequest(
        backbone,
        head,
        base,
        experiment or data.name,
        trials,
        study or f"{backbone}-{head}-{base.name}",
        storage,
        timeout_minutes,
        sampler,
        pruner,
        seed,
        tracking_uri,
        on_trial=None if quiet else on_trial,
        progress=line,
        command=_command_line(click.get_current_context()),
    )
    try:
        summary = run_study(req, data)
    finally:
        if line is not None:
            line.close()
    click.echo(
        f"study {summary['study']}: {summary['n_complete']} complete, {summary['n_pruned']} pruned, "
        f"{summary['n_failed']} failed"
    )
    click.echo(f"best trial {summary['best_trial']}: val macro-F1 {summary['best_value']:.4f}")
    for name, value in summary["best_params"].items():
        click.echo(f"  {name} = {value:.6g}" if isinstance(value, float) else f"  {name} = {value}")
    click.echo(
        f"tuned recipe: {summary['recipe_path']} (bench run --recipe {summary['recipe_path']} "
        f"--backbone {backbone} --head {head})"
    )
    if final:
        from bench.runner import RunRequest, run_one, summary_line

        result = run_one(RunRequest(backbone, head, summary["tuned"], req.experiment, tracking_uri), data)
        click.echo(summary_line(result))


def _command_line(ctx: click.Context) -> str:
    """The command as it was called, rebuilt from its parsed options (defaults left out), to print as
    the command that continues an interrupted job."""
    import shlex

    parts = ["bench", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if not isinstance(param, click.Option) or value in (None, (), False) or value == param.default:
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            parts.append(flag)
        else:
            parts += [item for v in (value if param.multiple else [value]) for item in (flag, str(v))]
    return shlex.join(parts)


# ----------------------------------------------------------------------------- predict / export


def _load_model_for_use(run_id, model_path, tracking_uri):
    from bench.errors import BenchError
    from bench.inference.classifier import load_keras_model, model_from_run

    if bool(run_id) == bool(model_path):
        raise BenchError("give exactly one of --run RUN_ID or --model PATH.keras")
    return model_from_run(run_id, tracking_uri) if run_id else load_keras_model(model_path)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--run", "run_id", default=None, metavar="RUN_ID", help="Use the model.keras of this bench run.")
@click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False), help="A .keras file.")
@TRACKING_URI_OPTION
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Folder for annotated files.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output style.",
)
@click.option("--no-detect", is_flag=True, help="Each image (or frame) is one already-cropped face.")
@click.option("--margin", default=0.15, show_default=True, type=click.FloatRange(0, 1), help="Crop margin.")
@click.option("--min-face", default=30, show_default=True, type=click.IntRange(8), help="Smallest face, pixels.")
@click.option(
    "--detect-width",
    default=320,
    show_default=True,
    type=click.IntRange(0),
    help="Search for faces at this frame width (0 = full size; faster when smaller).",
)
@click.option("--stride", default=1, show_default=True, type=click.IntRange(1), help="Video: every n-th frame.")
@click.option("--window", default=10, show_default=True, type=click.IntRange(1), help="Video: label mode window.")
@friendly_errors
def predict(
    inputs, run_id, model_path, tracking_uri, out_dir, fmt, no_detect, margin, min_face, detect_width, stride, window
):
    """Emotions of the faces in images, folders and videos.

    Predictions go to stdout (--format); per-input notes, errors and video timing go to stderr. The
    exit status is 1 when some input could not be read (the others are still processed)."""
    from bench.inference.classifier import FaceClassifier
    from bench.inference.predict import PredictOptions, predict_files
    from bench.reports import render_predictions

    _load_tensorflow()
    classifier = FaceClassifier(_load_model_for_use(run_id, model_path, tracking_uri))
    options = PredictOptions(
        detect=not no_detect,
        margin=margin,
        stride=stride,
        window=window,
        out_dir=Path(out_dir) if out_dir else None,
        min_face=min_face,
        detect_width=detect_width,
    )
    report = predict_files(classifier, list(inputs), options)
    click.echo(render_predictions(report, fmt))
    for line in _input_notes(report):
        click.echo(line, err=True)
    if any(r.error for r in report.inputs):
        sys.exit(1)


def _input_notes(report) -> list[str]:
    lines = []
    for r in report.inputs:
        if r.error:
            lines.append(f"error: {r.source}: {r.error}")
        elif r.faces == 0:
            lines.append(
                f"note: {r.source}: no face found"
                + (" (try --no-detect for cropped faces)" if r.kind == "image" else "")
            )
        if r.annotated:
            lines.append(f"wrote {r.annotated}")
    if report.video_frames:
        stages = ", ".join(f"{k} {v['mean']:.1f}" for k, v in report.stage_summary().items())
        lines.append(
            f"video: {report.video_frames} frames at {report.video_fps:.1f} frames/s; mean ms per frame: {stages}"
        )
    return lines


@cli.command()
@click.option("--run", "run_id", default=None, metavar="RUN_ID", help="Export the model.keras of this bench run.")
@click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False), help="A .keras file.")
@TRACKING_URI_OPTION
@click.option(
    "--format", "fmt", type=click.Choice(["tflite", "saved_model"]), required=True, help="File type to write."
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "dynamic", "float16"]),
    default="none",
    show_default=True,
    help="TFLite weights: int8 (dynamic) or float16; smaller, checked against a looser tolerance.",
)
@click.option("--out", required=True, type=click.Path(), help="The .tflite file or SavedModel folder to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly_errors
def export(run_id, model_path, tracking_uri, fmt, quantize, out, as_json):
    """Export a trained model to TensorFlow Lite or SavedModel and check it agrees with the Keras model."""
    from bench.inference.export import export_model

    _load_tensorflow()
    model = _load_model_for_use(run_id, model_path, tracking_uri)
    report = export_model(model, fmt, Path(out), quantize)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        verdict = "agrees" if report.agrees else "DISAGREES"
        click.echo(
            f"wrote {report.path} ({report.size_mb:.2f} MB; .keras {report.keras_size_mb:.2f} MB)\n"
            f"check on {report.samples} faces: {verdict} with the Keras model (max |diff| {report.max_abs_diff:.2e}, "
            f"tolerance {report.tolerance:g} for quantize={report.quantize}; same class for "
            f"{report.argmax_agreement:.0%}, {_confident_text(report)})\n"
            f"single-face latency: Keras {report.latency_ms_keras:.2f} ms, exported {report.latency_ms_exported:.2f} ms"
        )
    if not report.agrees:
        click.echo(f"error: the export fails its check: {report.failure}", err=True)
        sys.exit(1)


def _confident_text(report) -> str:
    if not report.confident_samples:
        return "no face confident enough to judge the class on"
    return f"{report.confident_agreement:.0%} of the {report.confident_samples} confident faces"


def main() -> None:  # pragma: no cover - console entry point
    cli()


if __name__ == "__main__":  # pragma: no cover - `python -m bench.cli`
    cli()
