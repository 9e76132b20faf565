"""Nested spaces and configurations: flat dotted names inside, nested dicts outside.

A space may nest dicts of domains to any depth; inside jhpo every parameter has one flat
name, its keys joined by ``"."`` (``{"optim": {"lr": ...}}`` holds ``"optim.lr"``), and
configurations are nested again only where they meet the user. A key containing ``"."``
would make that join ambiguous, so it is refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from jhpo.space.domains import SpaceError

SEPARATOR = "."


def flatten_parameters(parameters: Mapping, prefix: str = "") -> dict[str, Any]:
    """The leaves of a nested parameter dict under their dotted names, in order.

    A non-empty dict is a group; an empty dict is a constant like any other value.
    """
    leaves: dict[str, Any] = {}
    for key, value in parameters.items():
        name = join(prefix, checked_key(key, prefix))
        if isinstance(value, Mapping) and value:
            leaves.update(flatten_parameters(value, name))
        else:
            leaves[name] = value
    return leaves


def checked_key(key, prefix: str) -> str:
    where = f" (in {prefix!r})" if prefix else ""
    if not isinstance(key, str) or not key:
        raise SpaceError(f"parameter names must be non-empty strings, got {key!r}{where}")
    if SEPARATOR in key:
        raise SpaceError(
            f"parameter name {key!r}{where} contains '.', which joins the keys of nested "
            f"spaces ({{'optim': {{'lr': ...}}}} is named 'optim.lr'), so it would be "
            f"ambiguous; nest a dict instead or rename it"
        )
    return key


def join(prefix: str, key: str) -> str:
    return f"{prefix}{SEPARATOR}{key}" if prefix else key


def nest(flat: Mapping[str, Any]) -> dict:
    """A nested dict from dotted names, in the order given."""
    nested: dict = {}
    for name, value in flat.items():
        *groups, leaf = name.split(SEPARATOR)
        node = nested
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = value
    return nested


def group_names(leaves: Collection[str]) -> set[str]:
    """Every dotted prefix that names a group of ``leaves``."""
    groups = set()
    for name in leaves:
        parts = name.split(SEPARATOR)
        groups.update(SEPARATOR.join(parts[:i]) for i in range(1, len(parts)))
    return groups


def flatten_config(config: Mapping, leaves: Collection[str],
                   groups: Collection[str]) -> dict[str, Any]:
    """A nested configuration's values under dotted names; keys that are neither one of
    ``leaves`` nor a group holding some are an error naming them."""
    flat: dict[str, Any] = {}
    unknown: list[str] = []
    _collect(config, "", leaves, groups, flat, unknown)
    if unknown:
        raise SpaceError(
            f"configuration has unknown parameters {unknown} (parameters: {', '.join(leaves)})"
        )
    return flat


def _collect(config, prefix: str, leaves, groups, flat: dict, unknown: list) -> None:
    if not isinstance(config, Mapping):
        where = f"group {prefix!r}" if prefix else "a configuration"
        raise SpaceError(f"{where} must be a dict, got {type(config).__name__}")
    for key, value in config.items():
        if isinstance(key, str) and SEPARATOR in key:
            raise SpaceError(f"configuration key {key!r} contains '.': configurations are nested "
                             f"dicts shaped like the space ({{'optim': {{'lr': ...}}}})")
        name = join(prefix, str(key))
        if name in leaves:
            flat[name] = value
        elif name in groups:
            _collect(value, name, leaves, groups, flat, unknown)
        else:
            unknown.append(name)
