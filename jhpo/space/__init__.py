"""Typed search spaces and their unit-cube encoding.

``domains`` holds the domain constructors and the rules they check when built,
``nesting`` the flat dotted names of nested spaces, ``conditions`` the checks on
conditional parameters, ``numerics`` the maps between columns and values and their
limits, ``encoding`` one codec per domain kind, and ``search_space`` the ``Space``.
"""

from jhpo.space.domains import (
    Choice,
    Condition,
    Float,
    Int,
    Ordinal,
    SpaceError,
    choice,
    loguniform,
    lograndint,
    ordinal,
    randint,
    uniform,
)
from jhpo.space.search_space import Column, Space

__all__ = [
    "Column",
    "Condition",
    "Choice",
    "Float",
    "Int",
    "Ordinal",
    "Space",
    "SpaceError",
    "choice",
    "loguniform",
    "lograndint",
    "ordinal",
    "randint",
    "uniform",
]
