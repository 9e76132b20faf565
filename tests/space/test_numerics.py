from decimal import Decimal, localcontext
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo.space import Space, SpaceError
from jhpo.space import numerics

GRID = 2**24


def grid_rows(space, key, n):
    """Sampled rows plus the grid's ends and their neighbours."""
    edges = jnp.asarray([[0.0], [1.0 / GRID], [0.5], [1.0 - 1.0 / GRID], [1.0]], jnp.float32)
    return jnp.concatenate([space.sample(jax.random.key(key), n), edges])


def reference_value(u: float, lo: float, hi: float, log: bool) -> Decimal:
    """The map from a unit value to the domain, in 60-digit decimal arithmetic."""
    with localcontext() as context:
        context.prec = 60
        u, lo, hi = Decimal(u), Decimal(lo), Decimal(hi)
        if log:
            return (lo.ln() + u * (hi.ln() - lo.ln())).exp()
        return lo + u * (hi - lo)


@pytest.mark.parametrize("domain", [
    jhpo.loguniform(1e-300, 1.0),
    jhpo.loguniform(1e-300, 1e300),
    jhpo.loguniform(1e299, 1e300),
    jhpo.loguniform(1e-300, 1.000002e-300),
    jhpo.uniform(-1e300, 1e300),
    jhpo.uniform(-1e300, -1e299),
    jhpo.uniform(0.0, 1e39),
], ids=repr)
def test_configurations_decode_in_float64_against_a_60_digit_reference(domain):
    space = Space({"x": domain})
    rows = grid_rows(space, 0, 200)
    values = [c["x"] for c in space.to_configs(rows)]
    scale = max(abs(domain.lo), abs(domain.hi))
    for u, value in zip(np.asarray(rows[:, 0], np.float64), values):
        assert type(value) is float and domain.lo <= value <= domain.hi
        reference = reference_value(float(u), domain.lo, domain.hi, domain.log)
        if domain.log:
            assert value > 0.0 and abs(Decimal(value) / reference - 1) < Decimal("1e-12"), (u, value)
        else:
            assert abs(Decimal(value) - reference) <= Decimal(scale) * Decimal(2.0**-50), (u, value)


def test_loguniform_down_to_1e_minus_300_never_gives_zero():
    space = Space({"lr": jhpo.loguniform(1e-300, 1.0)})
    values = np.array([c["lr"] for c in space.to_configs(space.sample(jax.random.key(1), 2000))])
    assert values.min() >= 1e-300 and values.max() <= 1.0
    # log-uniform: about a third of the draws lie below 1e-200
    assert 0.25 < np.mean(values < 1e-200) < 0.42


@pytest.mark.parametrize("domain", [
    jhpo.randint(2**63 - 1000, 2**63 - 1),
    jhpo.randint(-(2**63), -(2**63) + 999),
    jhpo.randint(2**40, 2**40 + 9),
], ids=repr)
def test_integers_beyond_int32_decode_exactly_as_python_ints(domain):
    space = Space({"n": domain})
    rows = space.sample(jax.random.key(2), 300)
    count = domain.hi - domain.lo + 1
    for u, config in zip(np.asarray(rows[:, 0]), space.to_configs(rows)):
        # integer lo + k owns [k / count, (k + 1) / count) of the column
        assert config["n"] == domain.lo + int(Fraction(float(u)) * count)
        assert type(config["n"]) is int
    edges = [domain.lo, domain.lo + 1, domain.hi - 1, domain.hi]
    back = space.to_configs(space.from_configs([{"n": v} for v in edges]))
    assert [c["n"] for c in back] == edges


def test_log_integers_near_int64_decode_every_value_exactly():
    lo = 2**62
    space = Space({"n": jhpo.lograndint(lo, lo + 4095)})
    values = list(range(lo, lo + 4096))
    rows = space.from_configs([{"n": v} for v in values])
    assert [c["n"] for c in space.to_configs(rows)] == values
    # and each canonical row lies inside its integer's log-space bin, by a 60-digit reference
    with localcontext() as context:
        context.prec = 60
        low, width = Decimal(lo) - Decimal("0.5"), (Decimal(lo + 4095.5) / (Decimal(lo) - Decimal("0.5"))).ln()
        for u, v in zip(np.asarray(rows[::97, 0], np.float64), values[::97]):
            continuous = low * (Decimal(float(u)) * width).exp()
            assert v - Decimal("0.5") < continuous < v + Decimal("0.5")


def test_the_integer_limit_is_where_every_integer_still_round_trips():
    assert jhpo.randint(0, 2**20 - 1).hi == 2**20 - 1
    with pytest.raises(SpaceError, match=r"randint\(lo=0, hi=1048576\): at most 2\^20"):
        jhpo.randint(0, 2**20)
    space = Space({"n": jhpo.randint(0, 2**20 - 1)})
    values = jnp.arange(2**20, dtype=jnp.int32)
    rows = space.encode({"n": values})
    np.testing.assert_array_equal(np.asarray(space.decode(rows)["n"]), np.asarray(values))
    np.testing.assert_array_equal(np.asarray(space.canonicalize(rows)), np.asarray(rows))


def largest_log_integer_hi(lo: int) -> int:
    low, high = lo, 10**9  # the share is allowed at low and not at high
    while high - low > 1:
        middle = (low + high) // 2
        if numerics.smallest_integer_share(lo, middle, True) >= numerics.MIN_INTEGER_SHARE:
            low = middle
        else:
            high = middle
    return low


def test_the_log_integer_limit_is_where_every_integer_still_round_trips():
    hi = largest_log_integer_hi(1)
    space = Space({"n": jhpo.lograndint(1, hi)})
    with pytest.raises(SpaceError, match=rf"lograndint\(lo=1, hi={hi + 1}\): .*largest gets"):
        jhpo.lograndint(1, hi + 1)
    values = jnp.arange(1, hi + 1, dtype=jnp.int32)
    rows = space.encode({"n": values})
    np.testing.assert_array_equal(np.asarray(space.decode(rows)["n"]), np.asarray(values))
    np.testing.assert_array_equal(np.asarray(space.canonicalize(rows)), np.asarray(rows))


@pytest.mark.parametrize("domain", [
    jhpo.uniform(1e10, 1e10 + 2e4),
    jhpo.uniform(-3.0, 7.0),
    jhpo.loguniform(1e-300, 1.000002e-300),
    jhpo.loguniform(1e-300, 1e300),
    jhpo.uniform(-1e300, 1e300),
], ids=repr)
def test_rows_survive_a_trip_through_python_values_bit_for_bit(domain):
    space = Space({"x": domain})
    rows = grid_rows(space, 3, 500)
    again = space.from_configs(space.to_configs(rows))
    np.testing.assert_array_equal(np.asarray(again), np.asarray(rows))


@pytest.mark.parametrize("parameters,name,limit", [
    ({"x": jhpo.uniform(0.0, 1e39)}, "x", "float32"),
    ({"lr": jhpo.loguniform(1e-300, 1.0)}, "lr", "float32"),
    ({"ok": jhpo.uniform(0, 1), "n": jhpo.randint(2**40, 2**40 + 9)}, "n", "int32"),
])
def test_compiled_decode_and_encode_refuse_what_float32_cannot_hold(parameters, name, limit):
    space = Space(parameters)
    rows = space.sample(jax.random.key(4), 3)
    for call in (lambda: space.decode(rows), lambda: jax.jit(space.decode)(rows),
                 lambda: space.encode({n: jnp.zeros(3) for n in space.names})):
        with pytest.raises(SpaceError, match=rf"parameter '{name}'.*{limit}"):
            call()
    # the host path still reads them exactly
    assert len(space.to_configs(rows)) == 3


def test_compiled_decode_agrees_with_float64_decoding_where_float32_suffices():
    space = Space({"a": jhpo.loguniform(1e-37, 1e38), "b": jhpo.uniform(-1.5e38, 1.5e38),
                   "c": jhpo.loguniform(1e-4, 1e-1), "d": jhpo.randint(-(2**31), -(2**31) + 9)})
    rows = grid_rows(Space({"a": jhpo.uniform(0, 1)}), 5, 100)
    rows = jnp.repeat(rows, 4, axis=1)
    decoded = {k: np.asarray(v) for k, v in jax.jit(space.decode)(rows).items()}
    configs = space.to_configs(rows)
    for name in ("a", "c"):
        np.testing.assert_allclose(decoded[name], [c[name] for c in configs], rtol=2e-5)
    np.testing.assert_allclose(decoded["b"], [c["b"] for c in configs], rtol=0, atol=1.5e38 * 2e-7)
    assert decoded["d"].dtype == np.int32
    np.testing.assert_array_equal(decoded["d"], [c["d"] for c in configs])
    assert np.all(np.isfinite(decoded["a"])) and np.all(decoded["a"] > 0)
