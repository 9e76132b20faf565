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
    "tpe": "jhpo.searchers.tpe:tpe",
    "cmaes": "jhpo.searchers.cmaes:cmaes",
}


# Searchers that take several objectives, constraints or costs per trial (the options
# num_objectives, num_constraints, cost_aware; see jhpo.goal for the layout told).
_MULTI_OUTPUT = {"random", "quasirandom", "bo"}
_MULTI_OUTPUT_OPTIONS = ("num_objectives", "num_constraints", "cost_aware")


def names() -> list[str]:
    return sorted(_REGISTRY)


def make(name: str, space: Space, **options) -> Searcher:
    """The searcher registered as ``name`` over ``space``."""
    if name not in _REGISTRY:
        raise ValueError(f"searcher={name!r} is not one of {names()}")
    if any(options.get(o) not in (None, 0, 1, False) for o in _MULTI_OUTPUT_OPTIONS) and (
            name not in _MULTI_OUTPUT):
        raise ValueError(
            f"searcher={name!r} takes one objective and no constraints; for several, use one "
            f"of {sorted(_MULTI_OUTPUT)}"
        )
    module_name, attribute = _REGISTRY[name].split(":")
    constructor = getattr(importlib.import_module(module_name), attribute)
    return constructor(space, **options)
