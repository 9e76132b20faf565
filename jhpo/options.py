"""Checking a user's options in one place, so a typo gets a message that names it and
lists what would have been accepted (with the closest match)."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping


def closest(name: str, accepted: Iterable[str]) -> str:
    """'; did you mean X?' for the accepted name closest to ``name``, or ''."""
    matches = difflib.get_close_matches(str(name), [str(a) for a in accepted], n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def check_options(owner: str, options: Mapping, accepted: Iterable[str]) -> None:
    """Raise a ValueError naming the first option of ``options`` that ``owner`` does not
    take, the closest accepted name and all of them."""
    accepted = sorted(accepted)
    unknown = sorted(set(options) - set(accepted), key=str)
    if unknown:
        raise ValueError(f"{owner} has no option {unknown[0]!r}{closest(unknown[0], accepted)} "
                         f"It takes {accepted}")


def check_choice(parameter: str, value, choices: Iterable) -> None:
    """Raise a ValueError when ``value`` is not one of ``choices``, naming the closest."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{parameter}={value!r} is not one of {choices}{closest(value, choices)}")


def keyword_names(function: Callable, skip: int = 0) -> list[str]:
    """The names of ``function``'s parameters that may be given by keyword, after the
    first ``skip`` positional ones."""
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in kinds]
