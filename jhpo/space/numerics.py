"""The numeric maps between unit-cube columns and parameter values, and their limits.

Rows stay float32: searchers and GPs live there. A float column is read on a fixed grid
of ``GRID + 1`` points (``j / GRID`` is exact in float32), so every canonical row has an
integer position, and a Python value decoded from it in float64 on the host encodes back
to the same position. The limits below are what that promise needs:

- a float range must be at least ``MIN_RELATIVE_WIDTH`` of its larger bound, so float32
  values in compiled programs still tell about 16 values apart across it (and float64
  tells every grid point apart with a margin of 2^8);
- an integer must own at least ``MIN_INTEGER_SHARE`` of its column, 16 float32 steps
  near 1, so rounding in the compiled maps never moves an integer's centre into its
  neighbour's bin (tests/space/test_numerics.py round-trips every integer at the limit);
- float bounds stay within float64's normal range, integer bounds within int64.

Every map here takes its array module ``xp`` (numpy on the host in float64, jax.numpy in
compiled code in float32) and works in the dtype of its input.
"""

from __future__ import annotations

import math

import numpy as np

GRID = 2**24
MIN_RELATIVE_WIDTH = 1e-6
MIN_INTEGER_SHARE = 2.0**-20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT64_TINY = float(np.finfo(np.float64).tiny)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The smallest linear width whose grid steps (width / GRID) are normal float64 numbers.
MIN_LINEAR_WIDTH = GRID * FLOAT64_TINY
MIN_FLOAT32_LINEAR_WIDTH = GRID * FLOAT32_TINY


# ----------------------------------------------------------------------------- limits


def float_range_violation(lo: float, hi: float, log: bool) -> str | None:
    """Why float64 cannot decode ``[lo, hi]`` exactly on the grid, or None."""
    if log:
        if lo < FLOAT64_TINY:
            return (f"lo must be at least {FLOAT64_TINY:.3g} (float64's smallest normal "
                    f"number) on a log scale, got lo={lo!r}")
    else:
        width = hi - lo
        if math.isinf(width):
            return f"the width hi - lo overflows float64 (at most {np.finfo(np.float64).max:.3g})"
        if width < MIN_LINEAR_WIDTH:
            return (f"the width hi - lo must be at least {MIN_LINEAR_WIDTH:.3g} (2^24 times "
                    f"float64's smallest normal number), got {width!r}")
    magnitude = max(abs(lo), abs(hi))
    if hi - lo < MIN_RELATIVE_WIDTH * magnitude:
        return (f"the width hi - lo must be at least {MIN_RELATIVE_WIDTH:g} of the larger "
                f"bound's magnitude (float32 holds about 7 digits), got {hi - lo!r} "
                f"against {magnitude!r}")
    return None


def integer_range_violation(lo: int, hi: int, log: bool) -> str | None:
    """Why float32 rows cannot give every integer of ``lo..hi`` its own bin, or None."""
    for bound, value in (("lo", lo), ("hi", hi)):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"{bound} must be within int64 [-2^63, 2^63 - 1], got {bound}={value!r}"
    share = smallest_integer_share(lo, hi, log)
    if share >= MIN_INTEGER_SHARE:
        return None
    if not log:
        return (f"at most 2^20 = {2**20} integers fit, each needing 2^-20 of its unit column "
                f"(float32 rows resolve about 6e-8); got {hi - lo + 1}")
    return (f"each integer needs at least 2^-20 of its unit column (float32 rows resolve "
            f"about 6e-8), but the largest gets {share:.3g}; narrow the range")


def smallest_integer_share(lo: int, hi: int, log: bool) -> float:
    """The narrowest integer bin's width in unit coordinates (the top one on a log scale)."""
    if not log:
        return 1.0 / (hi - lo + 1)
    return math.log1p(1.0 / (hi - 0.5)) / log_integer_width(lo, hi)


def float32_violation(lo: float, hi: float, log: bool) -> str | None:
    """Why float32 values cannot hold the float domain ``[lo, hi]``, or None."""
    if log:
        if lo < FLOAT32_TINY or hi > FLOAT32_MAX:
            return (f"float32 values need {FLOAT32_TINY:.3g} <= lo and hi <= {FLOAT32_MAX:.3g} "
                    f"on a log scale")
        return None
    if max(abs(lo), abs(hi), hi - lo) > FLOAT32_MAX:
        return f"float32 values need |lo|, |hi| and hi - lo at most {FLOAT32_MAX:.3g}"
    if hi - lo < MIN_FLOAT32_LINEAR_WIDTH:
        return f"float32 values need a width hi - lo of at least {MIN_FLOAT32_LINEAR_WIDTH:.3g}"
    return None


def int32_violation(lo: int, hi: int) -> str | None:
    """Why int32 values cannot hold ``lo..hi``, or None."""
    if lo < INT32_MIN or hi > INT32_MAX:
        return "int32 values need bounds within [-2^31, 2^31 - 1]"
    return None


# ----------------------------------------------------------------------------- float columns


def to_grid(u, xp):
    """The grid position (integer in ``0..GRID``) of unit values ``u``."""
    return xp.rint(xp.clip(u, 0.0, 1.0) * GRID)


def from_grid(position, dtype):
    """Unit values of grid positions, exact in float32 and float64."""
    return position.astype(dtype) / dtype.type(GRID)


def log_width(lo: float, hi: float) -> float:
    """``log(hi / lo)``, accurate for narrow ranges and finite for the widest."""
    ratio = hi / lo
    return math.log(ratio) if math.isfinite(ratio) else math.log(hi) - math.log(lo)


def _exp_limit(dtype) -> float:
    # Below this, lo * exp(u * width) neither overflows nor loses lo's digits.
    return 80.0 if dtype == np.float32 else 700.0


def float_value(u, lo: float, hi: float, log: bool, xp):
    """Values of unit values ``u`` on ``[lo, hi]`` (linear or log scale), in u's dtype."""
    cast = u.dtype.type
    if not log:
        x = cast(lo) + u * cast(hi - lo)
    else:
        width = log_width(lo, hi)
        if width <= _exp_limit(u.dtype):
            x = cast(lo) * xp.exp(u * cast(width))
        else:
            x = xp.exp(cast(math.log(lo)) + u * cast(width))
    return xp.clip(x, cast(lo), cast(hi))


def float_unit(x, lo: float, hi: float, log: bool, xp):
    """The inverse of ``float_value``: unit values of values ``x`` (clipped to the range)."""
    cast = x.dtype.type
    x = xp.clip(x, cast(lo), cast(hi))
    if not log:
        return (x - cast(lo)) / cast(hi - lo)
    width = log_width(lo, hi)
    if width <= _exp_limit(x.dtype):
        return xp.log(x / cast(lo)) / cast(width)
    return (xp.log(x) - cast(math.log(lo))) / cast(width)


def first_grid_position(holds, lo: float, hi: float, log: bool) -> int:
    """The first grid position whose float64 value satisfies ``holds`` (a test that is
    monotone along the grid: once true, true), or ``GRID + 1`` when none does."""
    def holds_at(position: int) -> bool:
        u = from_grid(np.asarray([position]), np.dtype(np.float64))
        return bool(holds(float(float_value(u, lo, hi, log, np)[0])))

    if not holds_at(GRID):
        return GRID + 1
    low, high = 0, GRID  # holds at high; find the first position that holds
    while low < high:
        middle = (low + high) // 2
        if holds_at(middle):
            high = middle
        else:
            low = middle + 1
    return low


# ----------------------------------------------------------------------------- integer columns


def log_integer_width(lo: int, hi: int) -> float:
    """The log-space width of ``[lo - 0.5, hi + 0.5]``, where each integer owns
    ``[v - 0.5, v + 0.5]``."""
    return math.log1p((hi - lo + 1) / (lo - 0.5))


def integer_offset(u, lo: int, hi: int, log: bool, xp):
    """The offset ``v - lo`` of the integer whose bin holds unit value ``u`` (as floats)."""
    cast = u.dtype.type
    count = hi - lo + 1
    u = xp.clip(u, 0.0, 1.0)
    if not log:
        above_lo = u * cast(count)
    else:
        # Offsets from lo - 0.5 through expm1 keep the digits that lo's magnitude would eat.
        above_lo = cast(lo - 0.5) * xp.expm1(u * cast(log_integer_width(lo, hi)))
    return xp.clip(xp.floor(above_lo), 0, count - 1)


def integer_unit(offset, lo: int, hi: int, log: bool, xp, dtype):
    """The unit value at the centre of integer ``lo + offset``'s bin, in ``dtype``."""
    cast = np.dtype(dtype).type
    centre = offset.astype(dtype) + cast(0.5)
    if not log:
        return centre / cast(hi - lo + 1)
    return xp.log1p(centre / cast(lo - 0.5)) / cast(log_integer_width(lo, hi))
