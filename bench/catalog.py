"""The backbone and head catalog that `bench list` prints, cached so that listing needs no TensorFlow.

Counting a backbone's parameters means building it, and building needs Keras' backend: 13-20 s of
TensorFlow import before the first line here. The counts change only when a model's code, Keras or a
plugin changes, so the catalog is computed once and kept in bench's cache folder under a key made of
exactly those: the sources of the backbone and head packages and of the catalog's builder, the Keras
version, and the entry-point plugins (name, target, distribution version). A later `bench list` reads it
in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from bench.data.cache import cache_dir
from bench.registry import BACKBONES, HEADS


def catalog_key() -> str:
    """A digest of everything the catalog depends on; computing it imports no model code.

    Every source file in the packages of the built-in backbones and heads counts (a shared builder such
    as ``_keras_apps.py`` changes parameter counts too), and so does the module that builds the catalog."""
    digest = hashlib.sha256()
    sources: set[Path] = set()
    for registry in (BACKBONES, HEADS):
        for module in registry.builtin_module_names():
            path = _module_file(module)
            digest.update(module.encode() + (b"" if path else b"?"))
            if path:
                sources.update(path.parent.glob("*.py"))
        for ep in sorted(metadata.entry_points(group=registry.entry_point_group), key=lambda e: e.name):
            version = ep.dist.version if ep.dist is not None else "?"
            digest.update(f"{ep.name}={ep.value}@{version}".encode())
    reports = _module_file("bench.reports")
    for path in sorted(sources | ({reports} if reports else set())):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(_version("keras").encode())
    return digest.hexdigest()[:20]


def _module_file(module: str) -> Path | None:
    from importlib.util import find_spec

    spec = find_spec(module)
    return Path(spec.origin) if spec is not None and spec.origin else None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def cached_model_catalog(refresh: bool = False) -> dict:
    """The catalog of :func:`bench.reports.model_catalog`, from the cache when its key still matches.

    An unreadable or corrupt cache file is recomputed and replaced; a cache folder that cannot be written
    only costs the speed-up, never the listing."""
    from bench.reports import model_catalog

    path = cache_dir() / f"catalog-{catalog_key()}.json"
    if not refresh and path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    catalog = model_catalog()
    try:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(catalog))
        tmp.replace(path)
    except OSError:
        pass
    return catalog
