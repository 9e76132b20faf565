"""Searchers: which configurations to try next."""

from __future__ import annotations

import importlib

from jhpo.searchers.base import Buffer, Searcher, SearchState
from jhpo.space import Space

__all__ = ["Buffer", "Searcher", "SearchState", "make", "names"]

# Constructors by name, imported on first use so that `import jhpo` stays light.
_REGISTRY = {
    "random": "jhpo.searchers.random:random",
    "quasirandom": "jhpo.searchers.random:quasirandom",
    "bo": "jhpo.searchers.bo:bo",
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def make(name: str, space: Space, **options) -> Searcher:
    """The searcher registered as ``name`` over ``space``."""
    if name not in _REGISTRY:
        raise ValueError(f"searcher={name!r} is not one of {names()}")
    module_name, attribute = _REGISTRY[name].split(":")
    constructor = getattr(importlib.import_module(module_name), attribute)
    return constructor(space, **options)
