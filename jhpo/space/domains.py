"""Domain records, their constructors and the rules each checks when it is built."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from jhpo import jsonfile

from jhpo.space import numerics


class SpaceError(ValueError):
    """A search space broke one of the construction rules."""


COMPARISONS = ("ge", "gt", "le", "lt")


@dataclasses.dataclass(frozen=True)
class Condition:
    """A parameter is active only when its parent is active and satisfies this test.

    ``parent`` is the parent's full dotted name (``"optim.kind"`` in a nested space).
    """

    parent: str
    values: tuple | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __post_init__(self):
        where = f"when({self.parent!r})"
        if not isinstance(self.parent, str) or not self.parent:
            raise SpaceError(f"{where}: the parent must be a parameter's name, got {self.parent!r}")
        if self.values is None and all(getattr(self, b) is None for b in COMPARISONS):
            raise SpaceError(f"{where}: give the parent's values or a comparison (ge, gt, le, lt)")
        for bound in COMPARISONS:
            threshold = getattr(self, bound)
            if threshold is None:
                continue
            if not is_number(threshold):
                raise SpaceError(f"{where}: {bound} must be a real number, got {threshold!r}")
            if math.isnan(threshold):
                raise SpaceError(f"{where}: {bound} is NaN, and no value compares with NaN")
        for value in self.values or ():
            if not isinstance(value, Hashable):
                raise SpaceError(f"{where}: value {value!r} is not hashable; give the values as "
                                 f"separate arguments, when(parent, 'a', 'b')")
            if is_nan(value):
                raise SpaceError(f"{where}: a value is NaN, and NaN equals no value")

    def describe(self) -> dict:
        fields = {"parent": self.parent}
        if self.values is not None:
            fields["values"] = [jsonfile.normalise(v) for v in self.values]
        for bound in COMPARISONS:
            if getattr(self, bound) is not None:
                fields[bound] = getattr(self, bound)
        return fields


class _Domain:
    """Shared behaviour of the domain records: attaching a condition."""

    condition: Condition | None

    def when(self, parent: str, *values: Any, ge=None, gt=None, le=None, lt=None):
        """Make this parameter active only when ``parent`` (a full dotted name in a nested
        space) takes one of ``values`` (or satisfies the comparisons ``ge``/``gt``/``le``/``lt``)."""
        condition = Condition(parent, tuple(values) if values else None, ge, gt, le, lt)
        return dataclasses.replace(self, condition=condition)


@dataclasses.dataclass(frozen=True)
class Float(_Domain):
    lo: float
    hi: float
    log: bool = False
    condition: Condition | None = None

    def __post_init__(self):
        label = describe_call("loguniform" if self.log else "uniform", self.lo, self.hi)
        lo, hi = (_as_float(label, name, value) for name, value in (("lo", self.lo), ("hi", self.hi)))
        if not lo < hi:
            raise SpaceError(f"{label}: needs lo < hi")
        if self.log and lo <= 0:
            raise SpaceError(f"{label}: a log-scale domain needs lo > 0")
        _raise_if(label, numerics.float_range_violation(lo, hi, self.log))
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)


@dataclasses.dataclass(frozen=True)
class Int(_Domain):
    lo: int
    hi: int
    log: bool = False
    condition: Condition | None = None

    def __post_init__(self):
        label = describe_call("lograndint" if self.log else "randint", self.lo, self.hi)
        lo, hi = (_as_int(label, name, value) for name, value in (("lo", self.lo), ("hi", self.hi)))
        if not lo <= hi:
            raise SpaceError(f"{label}: needs lo <= hi")
        if self.log and lo < 1:
            raise SpaceError(f"{label}: a log-scale domain needs lo > 0 (lo >= 1)")
        _raise_if(label, numerics.integer_range_violation(lo, hi, self.log))
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)


@dataclasses.dataclass(frozen=True)
class Choice(_Domain):
    values: tuple
    condition: Condition | None = None

    def __post_init__(self):
        object.__setattr__(self, "values", _checked_values("choice", self.values))


@dataclasses.dataclass(frozen=True)
class Ordinal(_Domain):
    values: tuple
    condition: Condition | None = None

    def __post_init__(self):
        object.__setattr__(self, "values", _checked_values("ordinal", self.values))


Domain = Float | Int | Choice | Ordinal
DOMAIN_TYPES = (Float, Int, Choice, Ordinal)


def uniform(lo: float, hi: float) -> Float:
    """A float drawn uniformly from ``[lo, hi]`` (``lo < hi``)."""
    return Float(lo, hi, log=False)


def loguniform(lo: float, hi: float) -> Float:
    """A positive float whose logarithm is uniform on ``[log lo, log hi]`` (``0 < lo < hi``)."""
    return Float(lo, hi, log=True)


def randint(lo: int, hi: int) -> Int:
    """An integer drawn uniformly from ``lo..hi``, both inclusive (``lo <= hi``)."""
    return Int(lo, hi, log=False)


def lograndint(lo: int, hi: int) -> Int:
    """A positive integer in ``lo..hi`` (inclusive), spread evenly in log space."""
    return Int(lo, hi, log=True)


def choice(values: Sequence[Hashable]) -> Choice:
    """One of unordered ``values`` (strings, numbers, booleans, None), encoded one-hot."""
    return Choice(values)


def ordinal(values: Sequence[Hashable]) -> Ordinal:
    """One of ordered ``values``, encoded by rank in a single column."""
    return Ordinal(values)


# ----------------------------------------------------------------------------- checks


def describe_call(constructor: str, lo, hi) -> str:
    return f"{constructor}(lo={lo!r}, hi={hi!r})"


def _raise_if(label: str, violation: str | None) -> None:
    if violation is not None:
        raise SpaceError(f"{label}: {violation}")


def _as_float(label: str, name: str, value) -> float:
    if not is_number(value):
        raise SpaceError(f"{label}: {name} must be a real number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    if math.isnan(number):
        raise SpaceError(f"{label}: {name} must be a finite number, got NaN")
    if math.isinf(number):
        raise SpaceError(f"{label}: {name} must be finite (within float64's range, "
                         f"about ±1.8e308), got {value!r}")
    return number


def _as_int(label: str, name: str, value) -> int:
    if not is_number(value) or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        raise SpaceError(f"{label}: {name} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise SpaceError(f"{label}: integer domain needs integer bounds, got {name}={value!r}")
    return int(value)


def _checked_values(constructor: str, values) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise SpaceError(f"{constructor}(values): choices must be a list or tuple of values, "
                         f"got {values!r}")
    values = tuple(values)
    label = f"{constructor}({list(values)!r})"
    if not values:
        raise SpaceError(f"{constructor}(values): needs at least one value, got an empty list")
    for value in values:
        if not isinstance(value, Hashable):
            raise SpaceError(f"{label}: value {value!r} is not hashable")
        if is_nan(value):
            raise SpaceError(f"{label}: NaN equals no value, so a configuration holding it "
                             f"could not be read back")
    keys = [value_key(v) for v in values]
    if len(set(keys)) != len(keys):
        duplicates = sorted({repr(v) for v, k in zip(values, keys) if keys.count(k) > 1})
        raise SpaceError(f"{label}: duplicate values {', '.join(duplicates)}")
    return values


def value_key(value) -> tuple:
    """A key under which equal choice values meet: ``True == 1`` in Python, so booleans
    and numbers are kept apart and ``choice([0, False])`` is legal."""
    return (type(value) is bool, value)


def is_number(value) -> bool:
    """A real number that is not a boolean (Python or numpy)."""
    if isinstance(value, (bool, np.bool_, np.complexfloating)):
        return False
    return isinstance(value, (int, float, np.integer, np.floating))


def is_nan(value) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def describe_domain(domain: Domain) -> dict:
    """A JSON-ready description of one domain (its condition aside)."""
    if isinstance(domain, Float):
        return {"type": "loguniform" if domain.log else "uniform", "lo": domain.lo, "hi": domain.hi}
    if isinstance(domain, Int):
        return {"type": "lograndint" if domain.log else "randint", "lo": domain.lo, "hi": domain.hi}
    kind = "choice" if isinstance(domain, Choice) else "ordinal"
    return {"type": kind, "values": [jsonfile.normalise(v) for v in domain.values]}
