"""The recipe side of ``bench tune``: what a study searches and the recipe it writes, without Optuna.

The search space is data: the default space around the cpu recipe's evidence merged with the recipe's
``[tune.<name>]`` tables, each naming the recipe ``path`` it sets. This module turns it into
:class:`Param` ranges, a trial's values into a recipe (:func:`apply_values`) and a recipe back into
values (:func:`recipe_values`, :func:`baseline_params`: the baseline trial), and names and writes the
tuned recipe.

Why a module of its own: none of this needs a study, a storage or TensorFlow, so the CLI checks a
``[tune]`` table and a study name before anything heavy loads, and the tests check the space without
running one. :mod:`bench.tune` keeps the study (Optuna, trial runs, pruning, heartbeats) and stays the
only module that imports optuna; :func:`suggest` lives here because it only calls the trial it is given.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.config import PhaseConfig, Recipe
from bench.errors import BenchError
from bench.recipe_io import SPEED_FIELDS, to_dict
from bench.recipe_load import apply_override, from_dict

TUNED_DIR = Path("experiments") / "tuned"


@dataclass(frozen=True)
class Param:
    """One searched value: a recipe ``path``; a float/int range (``log`` for log-uniform) or ``choices``."""

    name: str
    path: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None


def default_space(recipe: Recipe, head: str, head_options: dict[str, Any] | None = None) -> dict[str, dict]:
    """The space around the evidence for the cpu recipe (experiments/cpu.toml): each phase's learning rate
    (log-uniform, /3 to x3) and weight decay (1e-5 to 1e-2), AdamW or SGD-Nesterov, a class-weight exponent
    of 0-0.6 (0 = none; powers above 1 with boosts up to 5 gave trials of 0.004-0.064 val macro-F1 on
    FER2013), boosts for disgust and fear of 1-2, label smoothing 0-0.15, head dropout 0.1-0.5, augmentation
    off or on, and mixup (alpha 0-0.4) and weight EMA (0, 0.99, 0.998) where the recipe has those fields.

    ``head_options`` (the head factory's keyword defaults, known once the heads are imported) leaves the
    dropout out for a head without one; ``None`` keeps it (checking a ``[tune]`` table before TensorFlow).
    """
    space: dict[str, dict] = {}
    for i, phase in enumerate(recipe.phases):
        lr, name = phase.learning_rate, phase.name
        if lr > 0:
            space[f"lr_{name}"] = {"path": f"phases.{i}.learning_rate", "low": lr / 3, "high": lr * 3, "log": True}
        space[f"weight_decay_{name}"] = {"path": f"phases.{i}.weight_decay", "low": 1e-5, "high": 1e-2, "log": True}
    accepted = dict(next(f for f in dataclasses.fields(PhaseConfig) if f.name == "optimizer").metadata)["choices"]
    optimizers = [name for name in ("adamw", "sgd_nesterov") if name in accepted]
    space["optimizer"] = {"path": "phases.*.optimizer", "choices": optimizers}
    space["class_weight_power"] = {"path": "class_weights.power", "low": 0.0, "high": 0.6}
    space["boost_disgust"] = {"path": "class_weights.boost.disgust", "low": 1.0, "high": 2.0}
    space["boost_fear"] = {"path": "class_weights.boost.fear", "low": 1.0, "high": 2.0}
    space["label_smoothing"] = {"path": "phases.*.label_smoothing", "low": 0.0, "high": 0.15}
    if head_options is None or "dropout" in head_options:
        space["head_dropout"] = {"path": f"model.head_options.{head}.dropout", "low": 0.1, "high": 0.5}
    space["augment"] = {"path": "data.augment.enabled", "choices": [False, True]}
    space["mixup_alpha"] = {"path": "data.mix.mixup_alpha", "low": 0.0, "high": 0.4}
    space["ema_decay"] = {"path": "phases.*.ema_decay", "choices": [0.0, 0.99, 0.998]}
    return {name: spec for name, spec in space.items() if has_field(recipe, spec["path"])}


def has_field(recipe: Recipe, path: str) -> bool:
    """Whether the recipe's dataclasses have ``path`` (``phases.N``/``phases.*`` index phases; keys inside
    free-form tables such as ``class_weights.boost`` always exist), so the default space follows the fields
    this version of bench has."""
    node: Any = recipe
    for key in path.split("."):
        if isinstance(node, dict):
            return True
        if isinstance(node, tuple):
            node = node[0]
            continue
        if not dataclasses.is_dataclass(node) or key not in {f.name for f in dataclasses.fields(node)}:
            return False
        node = getattr(node, key)
    return True


def search_space(recipe: Recipe, head: str, head_options: dict[str, Any] | None = None) -> list[Param]:
    """The default space merged with the recipe's ``[tune.<name>]`` tables, validated.

    A table named like a default entry changes it (``--set tune.boost_fear.high=3``); ``enabled = false``
    drops an entry; ``use_defaults = false`` in ``[tune]`` keeps only the recipe's own entries.
    """
    own = dict(recipe.tune)
    use_defaults = own.pop("use_defaults", True)
    raw = default_space(recipe, head, head_options) if use_defaults else {}
    for name, spec in own.items():
        raw[name] = {**raw.get(name, {}), **spec} if isinstance(spec, dict) else spec
    params = []
    for name, spec in raw.items():
        if not isinstance(spec, dict) or "path" not in spec:
            raise BenchError(f"tune.{name} must be a table with path and low/high or choices; received {spec!r}")
        unknown = set(spec) - {"path", "low", "high", "log", "integer", "choices", "enabled"}
        if unknown:
            raise BenchError(
                f"tune.{name}: unknown key {sorted(unknown)[0]}; accepted: path, low, high, log, "
                "integer, choices, enabled"
            )
        if not spec.get("enabled", True):
            continue
        if "choices" in spec:
            params.append(Param(name, spec["path"], choices=tuple(spec["choices"])))
            continue
        low, high = spec.get("low"), spec.get("high")
        if not isinstance(low, int | float) or not isinstance(high, int | float) or low > high:
            raise BenchError(f"tune.{name}: needs numbers low <= high; received low={low!r}, high={high!r}")
        if spec.get("log") and low <= 0:
            raise BenchError(f"tune.{name}: log = true needs low > 0; received low={low}")
        params.append(
            Param(name, spec["path"], float(low), float(high), bool(spec.get("log")), bool(spec.get("integer")))
        )
    return params


def head_defaults(head: str) -> dict[str, Any]:
    """The head factory's keyword options and their defaults (imports the heads: only after TensorFlow is set up)."""
    import inspect

    from bench.registry import HEADS

    parameters = inspect.signature(HEADS.get(head).factory).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def suggest(trial, space: list[Param]) -> dict[str, Any]:
    """The whole search space as a function of the trial: name -> value."""
    values = {}
    for p in space:
        if p.choices is not None:
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.integer:
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return values


def apply_values(recipe: Recipe, space: list[Param], values: dict[str, Any]) -> Recipe:
    """A new recipe with the trial's values set (validated like ``--set``)."""
    raw = to_dict(recipe)
    for p in space:
        value = values[p.name]
        text = repr(value) if not isinstance(value, str) else f'"{value}"'
        apply_override(raw, f"{p.path}={'true' if value is True else 'false' if value is False else text}")
        if p.path == "class_weights.power":
            raw["class_weights"]["scheme"] = "power"
    return from_dict(Recipe, raw)


def recipe_values(recipe: Recipe, space: list[Param], head_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's own value of each searched path, as it trains: the class-weight exponent is 0 for
    ``scheme = "none"`` and 1 for ``"balanced"``, a class without a boost has 1, a head option the recipe
    leaves out has the head factory's default (``head_options``), ``phases.*`` reads the first phase."""
    raw = to_dict(recipe)
    cw = recipe.class_weights
    values: dict[str, Any] = {}
    for p in space:
        if p.path == "class_weights.power":
            values[p.name] = {"none": 0.0, "balanced": 1.0}.get(cw.scheme, cw.power)
            continue
        node: Any = raw
        for key in p.path.split("."):
            if isinstance(node, list):
                index = 0 if key == "*" else int(key) if key.isdigit() else len(node)
                node = node[index] if index < len(node) else None
            else:
                node = node.get(key) if isinstance(node, dict) else None
        if node is None and p.path.startswith("class_weights.boost."):
            node = 1.0
        elif node is None and p.path.startswith(f"model.head_options.{recipe.model.head}."):
            node = (head_options or {}).get(p.path.rsplit(".", 1)[1])
        values[p.name] = node
    return values


def within(p: Param, value: Any) -> Any:
    """``value`` as the space can hold it: clipped into a range, the equal (or nearest numeric, else the
    first) choice; a value the recipe does not have (``None``) becomes the low end or first choice."""
    if p.choices is not None:
        for choice in p.choices:
            if choice == value and isinstance(choice, bool) == isinstance(value, bool):
                return choice
        numeric = [c for c in p.choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if numeric and isinstance(value, int | float) and not isinstance(value, bool):
            return min(numeric, key=lambda c: abs(c - value))
        return p.choices[0]
    if not isinstance(value, int | float) or isinstance(value, bool):
        value = p.low
    clipped = min(max(float(value), p.low), p.high)
    return int(round(clipped)) if p.integer else clipped


def baseline_params(space: list[Param], own: dict[str, Any]) -> dict[str, Any]:
    """The baseline trial's parameters: the recipe's own values (:func:`recipe_values`) as the space holds them."""
    return {p.name: within(p, own[p.name]) for p in space}


def without_speed_settings(recipe: Recipe) -> Recipe:
    """``recipe`` with its run-table :data:`~bench.recipe_io.SPEED_FIELDS` at their defaults: the recipe a
    study writes says what was tuned, not the tuning machine's steps_per_execution, thread counts and
    devices. The BatchNorm kernel (``model.batchnorm``) stays as the recipe chose it: ``auto`` is no
    machine's setting, it picks the kernel on whichever backend the written recipe runs."""
    return with_speed_settings(recipe, type(recipe.run)())


def with_speed_settings(recipe: Recipe, run) -> Recipe:
    """``recipe`` with the run-table :data:`~bench.recipe_io.SPEED_FIELDS` of ``run`` (a recipe's ``run``
    table): how this machine trains it (``bench tune --final`` trains the tuned recipe as the study did)."""
    names = [path.removeprefix("run.") for path in SPEED_FIELDS if path.startswith("run.")]
    return replace(recipe, run=replace(recipe.run, **{name: getattr(run, name) for name in names}))


def check_study_name(name: str) -> None:
    """A one-line error unless ``name`` is a plain name: it names the study in the storage and the file
    ``experiments/tuned/NAME.toml``, and ``--study /some/path`` once wrote the recipe outside that folder."""
    if name and not re.search(r"[/\\]|\.\.", name) and name.strip() == name and not name.startswith("."):
        return
    suggestion = re.sub(r"[^\w.-]+", "-", name.replace("..", "-")).strip("-.") or "my-study"
    raise BenchError(
        f"--study {name!r}: a study name is a name, not a path (no /, \\, .., leading dot or spaces around "
        f"it); its tuned recipe goes to {TUNED_DIR}/NAME.toml; use e.g. --study {suggestion}"
    )


def write_new(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/NAME.toml``, or ``NAME-2.toml``, ``NAME-3.toml``, ... when taken: a
    tuned recipe is never written over another one (a rerun of a study, another worker's)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = folder / (f"{name}.toml" if n == 1 else f"{name}-{n}.toml")
        try:
            with path.open("x") as handle:  # exclusive: two workers finishing together take two names
                handle.write(text)
            return path
        except FileExistsError:
            continue
    raise BenchError(f"{folder}: {name}.toml to {name}-9999.toml all exist; remove some or use another --study")
