"""Checks on conditional parameters: the parent exists, the test fits it, no cycles."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from jhpo.space.domains import COMPARISONS, Choice, Condition, Domain, Float, Int, Ordinal, \
    SpaceError, is_number, value_key
from jhpo.space.nesting import SEPARATOR


def check_condition(name: str, condition: Condition, domains: Mapping[str, Domain],
                    constants: Collection[str], groups: Collection[str]) -> None:
    """Raise a SpaceError naming ``name`` when its condition cannot be evaluated."""
    parent = condition.parent
    if parent not in domains:
        raise SpaceError(f"parameter {name!r}: condition on {parent!r}, "
                         f"{_what_is(parent, domains, constants, groups)}")
    parent_domain = domains[parent]
    comparisons = [b for b in COMPARISONS if getattr(condition, b) is not None]
    if condition.values is not None and isinstance(parent_domain, (Choice, Ordinal)):
        known = {value_key(v) for v in parent_domain.values}
        for value in condition.values:
            if value_key(value) not in known:
                raise SpaceError(
                    f"parameter {name!r}: condition value {value!r} is not one of "
                    f"{parent!r}'s values {list(parent_domain.values)!r}"
                )
    if comparisons and not is_numeric(parent_domain):
        raise SpaceError(
            f"parameter {name!r}: comparison {comparisons[0]!r} needs a numeric parent, "
            f"but {parent!r} is not numeric"
        )


def _what_is(parent: str, domains, constants, groups) -> str:
    if parent in constants:
        return "which is a constant, not a tunable parameter"
    if parent in groups:
        return "which is a group of parameters; name one of them by its dotted path"
    siblings = [n for n in domains if n.rsplit(SEPARATOR, 1)[-1] == parent]
    hint = (f" (did you mean {' or '.join(map(repr, siblings))}? conditions name parameters "
            f"by their full dotted path)") if siblings else ""
    return f"an unknown parameter{hint}; tunable parameters: {', '.join(domains)}"


def is_numeric(domain: Domain) -> bool:
    if isinstance(domain, (Float, Int)):
        return True
    if isinstance(domain, Ordinal):
        return all(is_number(v) for v in domain.values)
    return False


def topological_order(domains: Mapping[str, Domain]) -> list[str]:
    """Parents before children; a cycle of conditions is an error."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise SpaceError(f"parameter {name!r}: cycle of conditions {' -> '.join(cycle)}")
        state[name] = "visiting"
        condition = domains[name].condition
        if condition is not None:
            visit(condition.parent, path + [name])
        state[name] = "done"
        order.append(name)

    for name in domains:
        visit(name, [])
    return order
