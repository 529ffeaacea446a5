"""From a command line to the runs it asks for: recipe + ``--set`` + options -> resolved recipes.

The one place a run is described (MMEngine's ``Runner.from_cfg`` in spirit): command-line options are
overrides of recipe fields (:data:`OPTION_FIELDS`), registry names and the data source are checked
here, once, before TensorFlow loads, and what comes out is a list of complete recipes, one a run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.config import Recipe
from bench.errors import BenchError
from bench.recipe_load import load_recipe

OPTION_FIELDS = {
    "backbone": "model.backbone",
    "head": "model.head",
    "data": "data.source",
    "labels": "data.labels",
    "experiment": "run.experiment",
    "weights": "model.weights",
    "seed": "run.seed",
    "deterministic": "run.deterministic",
    "devices": "run.devices",
}
"""Command-line option -> the recipe field it overrides."""


def resolve_recipe(recipe: str, overrides: tuple[str, ...] | list[str] = (), **options: Any) -> Recipe:
    """The recipe file, then ``--set`` overrides, then the options given (None / False = not given), with
    ``run.experiment`` defaulting to the data set's name.

    >>> resolve_recipe("cpu", ["data.batch_size=64"], backbone="resnet50", data="synthetic").run.experiment
    'synthetic'
    """
    unknown = set(options) - set(OPTION_FIELDS)
    if unknown:
        raise TypeError(f"no recipe field for option {sorted(unknown)[0]!r}; known: {', '.join(OPTION_FIELDS)}")
    values = {OPTION_FIELDS[k]: v for k, v in options.items() if v is not None and v is not False}  # 0 is given
    resolved = load_recipe(recipe, list(overrides), values)
    if resolved.data.votes:  # absolute, as the data path is recorded: a resume may start in another folder
        votes = str(Path(resolved.data.votes).expanduser().resolve())
        resolved = replace(resolved, data=replace(resolved.data, votes=votes))
    if resolved.data.source and not resolved.run.experiment:
        from bench.data.dataset import dataset_name

        resolved = replace(resolved, run=replace(resolved.run, experiment=dataset_name(resolved.data.source)))
    return resolved


def check_runnable(recipe: Recipe) -> None:
    """A one-line error unless the recipe names a data source, a registered backbone and a registered head,
    and its backend and batch can train on its ``run.devices``."""
    from bench.devices import check_devices
    from bench.registry import BACKBONES, HEADS

    if not recipe.model.backbone:
        raise BenchError("name at least one --backbone (or --backbone all); see `bench list`")
    if not recipe.data.source:
        raise BenchError("--data is required: a FER2013 CSV, an image-folder root, or synthetic to try bench")
    BACKBONES.check(recipe.model.backbone)
    HEADS.check(recipe.model.head)
    check_devices(recipe)  # before TensorFlow or JAX loads


def backbone_names(backbones) -> list[str]:
    """``--backbone`` values as registered names (``all`` = every backbone), each checked once."""
    from bench.registry import BACKBONES

    names = BACKBONES.known_names() if "all" in backbones else list(dict.fromkeys(backbones))
    for name in names:
        BACKBONES.check(name)
    return names


def expand(base: Recipe, backbones: tuple[str, ...] | list[str] = (), seeds: tuple[int, ...] | list[int] = ()):
    """One recipe per backbone x seed (``all`` = every registered backbone), each checked; without
    ``backbones`` or ``seeds``, the recipe's own."""
    names = backbone_names(backbones)
    runs = [
        replace(base, model=replace(base.model, backbone=name), run=replace(base.run, seed=seed))
        for name in names or [base.model.backbone]
        for seed in seeds or [base.run.seed]
    ]
    for run in runs:
        check_runnable(run)
    return runs
