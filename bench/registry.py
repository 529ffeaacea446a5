"""One registry idiom for backbones and heads, with lazy entry-point plugins.

A factory is a keyword-only function registered under its own name (timm's idiom); third-party
packages add factories through the ``bench.backbones`` / ``bench.heads`` entry-point groups, loaded
on the first lookup so that importing bench stays cheap.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from bench.errors import BenchError


@dataclass(frozen=True)
class Entry:
    """A registered factory and the metadata it was registered with."""

    name: str
    factory: Callable[..., Any]
    info: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Name -> factory mapping for one kind of component (e.g. ``"backbone"``).

    Args:
        kind: what the registry holds, used in error messages.
        entry_point_group: the ``importlib.metadata`` group plugins register in.
        builtin_modules: modules whose import registers the built-in factories.
    """

    def __init__(self, kind: str, entry_point_group: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtin_modules = builtin_modules
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, fn: Callable[..., Any] | None = None, **info: Any):
        """Decorator registering ``fn`` under ``fn.__name__``; ``info`` is stored as metadata."""

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            name = factory.__name__
            if name in self._entries:
                raise BenchError(f"{self.kind} '{name}' is already registered; choose another name")
            self._entries[name] = Entry(name=name, factory=factory, info=dict(info))
            return factory

        return decorator(fn) if fn is not None else decorator

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        import importlib

        for module in self._builtin_modules:
            importlib.import_module(module)
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name in self._entries:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break bench
                raise BenchError(f"plugin {self.kind} '{ep.name}' ({ep.value}) failed to load: {exc}") from exc
            if ep.name not in self._entries:
                # The plugin did not register itself through the decorator: register the object.
                info = getattr(obj, "bench_info", {})
                self._entries[ep.name] = Entry(name=ep.name, factory=obj, info=dict(info))

    def get(self, name: str) -> Entry:
        """The entry for ``name``; unknown names raise a one-line error with close matches."""
        self._ensure_loaded()
        if name in self._entries:
            return self._entries[name]
        raise self._unknown(name, sorted(self._entries))

    def _unknown(self, name: str, known: list[str]) -> BenchError:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return BenchError(f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(known)}")

    def builtin_module_names(self) -> tuple[str, ...]:
        """The modules whose import registers the built-in factories (not imported here)."""
        return self._builtin_modules

    def known_names(self) -> list[str]:
        """Sorted names, without importing any factory (so without TensorFlow): a built-in is named
        after its module (one name everywhere), a plugin after its entry point."""
        if self._loaded:
            return sorted(self._entries)
        builtin = {module.rsplit(".", 1)[-1] for module in self._builtin_modules}
        return sorted(builtin | {ep.name for ep in metadata.entry_points(group=self.entry_point_group)})

    def check(self, name: str) -> None:
        """Fail like :meth:`get` for an unknown name, in milliseconds: a typo is reported before the
        13-20 s TensorFlow import that loading the factories costs."""
        known = self.known_names()
        if name not in known:
            raise self._unknown(name, known)

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build ``name`` by calling its factory with keyword arguments."""
        return self.get(name).factory(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching a shell-style wildcard."""
        self._ensure_loaded()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._entries


BACKBONES = Registry(
    "backbone",
    "bench.backbones",
    builtin_modules=(
        "bench.backbones.baseline_cnn",
        "bench.backbones.resnet50",
        "bench.backbones.mobilenet_v3_small",
        "bench.backbones.efficientnet_b3",
        "bench.backbones.xception",
        "bench.backbones.mini_xception",
    ),
)
HEADS = Registry(
    "head",
    "bench.heads",
    builtin_modules=("bench.heads.hybrid", "bench.heads.mlp", "bench.heads.linear", "bench.heads.conv_gap"),
)
