"""Searchers: which configurations to try next."""

from __future__ import annotations

import importlib

from jhpo.searchers.base import Buffer, Searcher, SearchState
from jhpo.options import check_choice, check_options, keyword_names
from jhpo.space import Space

__all__ = ["Buffer", "Searcher", "SearchState", "make", "names"]

# Constructors by name, imported on first use so that `import jhpo` stays light.
_REGISTRY = {
    "random": "jhpo.searchers.random:random",
    "quasirandom": "jhpo.searchers.random:quasirandom",
    # the function whose keyword parameters are bo's options
    "bo": "jhpo.searchers.bo:bo:make_config",
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
    """The searcher registered as ``name`` over ``space``; an option it does not take is
    an error that lists those it does."""
    check_choice("searcher", name, names())
    if any(options.get(o) not in (None, 0, 1, False) for o in _MULTI_OUTPUT_OPTIONS) and (
            name not in _MULTI_OUTPUT):
        raise ValueError(
            f"searcher={name!r} takes one objective and no constraints; for several, use one "
            f"of {sorted(_MULTI_OUTPUT)}"
        )
    module_name, attribute, *options_function = _REGISTRY[name].split(":")
    module = importlib.import_module(module_name)
    constructor = getattr(module, attribute)
    accepted = keyword_names(getattr(module, options_function[0]) if options_function
                             else constructor, skip=1)
    check_options(f"searcher {name!r}", options, accepted)
    return constructor(space, **options)
