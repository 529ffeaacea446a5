"""A resolved recipe written out: plain dicts (JSON, logging), flat MLflow params, TOML that
:func:`bench.recipe_load.load_recipe` reads back, and the hash by which a leaderboard pools seeds."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any

from bench.config import SPEED, SUBJECT, PhaseConfig, Recipe, fields_with_role, later_defaults


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain dicts/lists (tuples become lists) for TOML, JSON and logging."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data.batch_size": 32, "phases.0.learning_rate": 0.001, ...}`` for MLflow params."""
    out: dict[str, Any] = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else None
    if items is None:
        return {prefix.rstrip("."): obj}
    for key, value in items:
        if isinstance(value, dict | list) and value and not all(isinstance(v, int | float) for v in value):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def recipe_hash(recipe: Recipe) -> str:
    """A short hash of the resolved recipe without its seed and name: runs with equal hashes differ only
    by seed or by speed settings (:data:`SPEED_FIELDS`), so a leaderboard may pool them."""
    neutral = to_dict(dataclasses.replace(recipe, name="", description="", run=dataclasses.replace(recipe.run, seed=0)))
    for path in RUN_FIELDS + SPEED_FIELDS:  # what a run trains, not on what, where it logs or how fast
        table, key = _table_and_key(neutral, path)
        del table[key]
    for path, default in LATER_DEFAULTS.items():
        table, key = _table_and_key(neutral, path)
        if table[key] == default:
            del table[key]
    for phase in neutral["phases"]:
        for key, default in LATER_PHASE_DEFAULTS.items():
            if phase.get(key) == default:
                del phase[key]
    for options in neutral["model"]["head_options"].values():
        for key in SPEED_HEAD_OPTIONS:
            options.pop(key, None)
    return hashlib.sha256(_dict_to_toml(neutral).encode()).hexdigest()[:12]


def _table_and_key(recipe: dict, path: str) -> tuple[dict, str]:
    """The table holding a dotted field (``data.augment.resample``) of a recipe dict, and its key."""
    *sections, key = path.split(".")
    return functools.reduce(dict.__getitem__, sections, recipe), key


RUN_FIELDS = fields_with_role(SUBJECT)
"""Recipe fields that name the run's subject rather than its method (declared ``role=SUBJECT`` in
:mod:`bench.config`); :func:`recipe_hash` leaves them out, so runs of one recipe on several backbones pool,
and hashes match those logged before these fields existed."""

SPEED_FIELDS = fields_with_role(SPEED)
"""Recipe fields that set how fast a run trains, never what it trains (declared ``role=SPEED``);
:func:`recipe_hash` leaves them out at every value, not only at their defaults (as :data:`LATER_DEFAULTS`
would), so runs that differ only in these pool on a leaderboard, as runs on a faster machine do.

The same steps, in the same order, on the same batches: ``steps_per_execution`` only groups them into
fewer calls from Python, the thread counts only split each op's work differently (float sums may
then round differently in the last bits, as they do between machines), and ``model.batchnorm`` only picks
the kernel that computes BatchNorm (the fused one is tested equal to Keras' layer in inference and in
training steps; runs logged with ``fused`` before it joined this tuple keep the hashes they logged), and
``run.devices`` only splits each global batch of ``data.batch_size`` across devices, BatchNorm's statistics
still the global batch's (:mod:`bench.devices`; tests/test_data_parallel.py measures equal losses). A
wall-clock budget may fit more epochs when training is faster; that holds for faster hardware too, which
the hash does not record either. ``run.jit_compile`` is of this kind too but stays hashed: every run
logged so far hashed it, so leaving it out now would change every logged hash."""

SPEED_HEAD_OPTIONS = ("formulation",)
"""Head options of the same kind as :data:`SPEED_FIELDS`: the hybrid head's ``formulation`` computes the
same function on the same variables (tests/test_heads_layers.py), so it is left out of the hash too."""

LATER_DEFAULTS = later_defaults(Recipe)
"""Fields added after runs were logged (declared ``later=True``), left out of :func:`recipe_hash` at their
defaults: a FER2013 run hashes as it did before label sets existed, so old and new runs of one recipe
still pool."""

LATER_PHASE_DEFAULTS = later_defaults(PhaseConfig)
"""The same for fields of every ``[[phases]]`` table."""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(recipe: Recipe) -> str:
    """The resolved recipe as TOML that :func:`load_recipe` reads back to an equal recipe."""
    return _dict_to_toml(to_dict(recipe))


def _dict_to_toml(data: dict[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict | list)]

    def table(name: str, values: dict[str, Any]) -> None:
        lines.append(f"\n[{name}]")
        nested = {k: v for k, v in values.items() if isinstance(v, dict) and k != "boost"}
        for k, v in values.items():
            if k not in nested:
                lines.append(f"{k} = {_toml_value(v)}")
        for k, v in nested.items():
            table(f"{name}.{k}", v)

    for key in ("data", "model", "class_weights", "run", "eval", "tune"):
        if key in data:  # recipe_hash leaves tables added later out at their defaults
            table(key, data[key])
    for phase in data["phases"]:
        lines.append("\n[[phases]]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in phase.items())
    return "\n".join(lines) + "\n"
