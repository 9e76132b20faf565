"""JSON as jhpo writes it: one normaliser, non-finite floats kept, atomic replacement.

Standard JSON has no NaN or infinity, and Python's ``json`` writes them as bare ``NaN``
tokens that other readers reject. jhpo writes a non-finite float as the object
``{"$float": "nan"}`` (or ``"inf"``, ``"-inf"``) and reads it back as the float, so a
record stays valid JSON whatever an objective returned, and reading it back gives what
was written. numpy and JAX scalars and arrays become Python numbers and lists, tuples
become lists, mapping keys strings; any other object is written as its ``repr``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

NONFINITE_TAG = "$float"
_NONFINITE_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _nonfinite_name(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def normalise(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, finite numbers, bool, None), with
    non-finite floats tagged."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {NONFINITE_TAG: _nonfinite_name(value)}
    if isinstance(value, Mapping):
        return {str(key): normalise(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(item) for item in value]
    if isinstance(value, np.generic) or _is_array(value):
        return normalise(np.asarray(value).tolist())
    return repr(value)


def _is_array(value: Any) -> bool:
    return hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype")


def _restore_nonfinite(record: dict) -> Any:
    if len(record) == 1 and record.get(NONFINITE_TAG) in _NONFINITE_NAMES:
        return _NONFINITE_NAMES[record[NONFINITE_TAG]]
    return record


def dumps(value: Any, **options) -> str:
    """``value`` normalised and written as standard JSON."""
    return json.dumps(normalise(value), allow_nan=False, **options)


def loads(text: str | bytes) -> Any:
    """JSON text back to Python data, tagged non-finite floats as floats."""
    return json.loads(text, object_hook=_restore_nonfinite)


def same_json(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` write the same JSON (tuples and lists alike, NaN equal NaN)."""
    return dumps(a, sort_keys=True) == dumps(b, sort_keys=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` in one step: a kill leaves the old file or the new one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    temporary.replace(path)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line and flush it, so a record is on disk once this returns."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
