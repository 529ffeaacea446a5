"""A recipe from its TOML file, ``--set`` overrides and command-line options to a validated
:class:`bench.config.Recipe`: every key and value checked at the boundary, so a bad one is a one-line
:class:`BenchError` naming the key, the value received and what is accepted.

Why apart from :mod:`bench.config`: that module declares what a recipe is (its typed fields, their
accepted values and roles); this one reads recipes in, whatever declares them."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from bench.config import Recipe
from bench.errors import BenchError

# ----------------------------------------------------------------------------- validation


def _fail(key: str, value: Any, accepted: str) -> BenchError:
    return BenchError(f"recipe key '{key}': received {value!r}; expected {accepted}")


def _check_scalar(key: str, value: Any, typ: Any, meta: dict) -> Any:
    if typ is bool:
        if not isinstance(value, bool):
            raise _fail(key, value, "true or false")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, value, "an integer")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(key, value, "a number")
        value = float(value)
    elif typ is str:
        if not isinstance(value, str):
            raise _fail(key, value, "a string")
    lo_hi = meta.get("range")
    if lo_hi and not (lo_hi[0] <= value <= lo_hi[1]):
        raise _fail(key, value, f"a value in [{lo_hi[0]}, {lo_hi[1]}]")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise _fail(key, value, "one of " + ", ".join(map(str, choices)))
    return value


def _convert(key: str, value: Any, typ: Any, meta: dict) -> Any:
    origin = typing.get_origin(typ)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise _fail(key, value, f"a table [{key}]")
        return from_dict(typ, value, prefix=key + ".")
    if origin is tuple:
        args = typing.get_args(typ)
        if not isinstance(value, list | tuple):
            raise _fail(key, value, "a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(f"{key}.{i}", v, args[0], meta) for i, v in enumerate(value))
        if len(value) != len(args):
            raise _fail(key, value, f"a list of {len(args)} values")
        return tuple(_convert(f"{key}.{i}", v, t, meta) for i, (v, t) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(key, value, "a table")
        val_type = typing.get_args(typ)[1]
        if val_type is Any:
            return dict(value)
        return {k: _convert(f"{key}.{k}", v, val_type, {"range": (0, 1e6)}) for k, v in value.items()}
    if isinstance(typ, types.UnionType):
        raise TypeError(f"unsupported union type for {key}")
    return _check_scalar(key, value, typ, meta)


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a plain dict, validating every key and value."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        where = f"[{prefix.rstrip('.')}]" if prefix else "the recipe's top level"
        raise BenchError(
            f"unknown recipe key '{prefix}{sorted(unknown)[0]}'; keys accepted in {where}: {', '.join(fields)}"
        )
    kwargs = {
        name: _convert(prefix + name, data[name], hints[name], dict(fields[name].metadata))
        for name in fields
        if name in data
    }
    return cls(**kwargs)


# ----------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """A TOML value (``1e-4``, ``true``, ``[0.2, 0.4]``, ``"x"``), or the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_assignment(text: str, option: str, example: str, form: str = "KEY=VALUE") -> tuple[str, str]:
    """``(key, value)`` of a ``KEY=VALUE`` command-line item, both stripped; a one-line error without ``=``."""
    if "=" not in text:
        raise BenchError(f"{option} '{text}': expected {form}, e.g. {example}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``key.sub=value`` to a raw recipe dict; ``phases.N.key`` or ``phases.*.key`` index phases."""
    path, text = split_assignment(assignment, "--set", "--set data.batch_size=64", form="key.sub=value")
    apply_value(raw, path, parse_value(text))


def apply_value(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (``key.sub``; ``phases.N.key`` or ``phases.*.key`` index phases) to a parsed value."""
    keys = path.split(".")
    targets: list[Any] = [raw]
    for depth, key in enumerate(keys[:-1]):
        next_targets = []
        for node in targets:
            if isinstance(node, list):
                if key == "*":
                    next_targets.extend(node)
                    continue
                if not key.isdigit() or int(key) >= len(node):
                    raise BenchError(f"--set '{path}': '{key}' is not a phase index 0-{len(node) - 1} or *")
                next_targets.append(node[int(key)])
            else:
                next_targets.append(node.setdefault(key, [] if keys[depth + 1].isdigit() else {}))
        targets = next_targets
    for node in targets:
        if not isinstance(node, dict):
            raise BenchError(f"--set '{path}': '{keys[-2]}' is not a table")
        node[keys[-1]] = value


# ----------------------------------------------------------------------------- loading and dumping


def recipe_dirs() -> list[Path]:
    """Folders searched for recipe names: ./experiments, then the one beside the bench package."""
    here = Path(__file__).resolve().parent.parent / "experiments"
    return [Path.cwd() / "experiments", here]


def find_recipe(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        if path.is_dir():
            raise BenchError(f"recipe '{path}' is a folder; give a .toml file in it or a recipe name")
        if not path.is_file():
            raise BenchError(f"recipe file '{path}' does not exist")
        return path
    for folder in recipe_dirs():
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for d in recipe_dirs() if d.is_dir() for p in d.glob("*.toml")})
    raise BenchError(f"unknown recipe '{name_or_path}'; known: {', '.join(known) or 'none'} (or give a .toml path)")


def load_recipe(
    name_or_path: str, overrides: tuple[str, ...] | list[str] = (), values: dict[str, Any] | None = None
) -> Recipe:
    """Load a recipe by name (``experiments/<name>.toml``) or path, apply ``--set`` overrides, then
    ``values`` (``{"model.backbone": "resnet50", ...}``: command-line options, already typed), validate."""
    path = find_recipe(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: not valid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise BenchError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); TOML files are UTF-8: "
            "save it as UTF-8"
        ) from exc
    raw.setdefault("name", path.stem)
    for assignment in overrides:
        apply_override(raw, assignment)
    for path, value in (values or {}).items():
        apply_value(raw, path, value)
    return from_dict(Recipe, raw)
