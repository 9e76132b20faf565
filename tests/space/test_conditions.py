import math
import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jhpo
from jhpo.space import Space, SpaceError

GRID = 2**24


def nested_conditional_space():
    return Space({
        "optim": {
            "kind": jhpo.choice(["sgd", "adam"]),
            "momentum": jhpo.uniform(0.0, 0.99).when("optim.kind", "sgd"),
            "nesterov": jhpo.choice([False, True]).when("optim.momentum", gt=0.5),
        },
        "warmup": {"steps": jhpo.randint(0, 100).when("optim.kind", "adam")},
        "layers": jhpo.randint(1, 4),
    })


def test_conditions_name_nested_parents_by_dotted_path():
    space = nested_conditional_space()
    rows = space.sample(jax.random.key(0), 300)
    configs = space.to_configs(rows)
    for config in configs:
        optim = config["optim"]
        expected = {"kind"} | ({"momentum"} if optim["kind"] == "sgd" else set())
        if "momentum" in optim and optim["momentum"] > 0.5:
            expected.add("nesterov")
        assert set(optim) == expected
        # a group with nothing active is left out, like an inactive parameter
        assert ("warmup" in config) == (optim["kind"] == "adam")
    assert any("nesterov" in c["optim"] for c in configs) and any("warmup" in c for c in configs)
    np.testing.assert_array_equal(np.asarray(space.from_configs(configs)), np.asarray(rows))


@pytest.mark.parametrize("parameters,pattern", [
    ({"o": {"kind": jhpo.choice(["sgd"])}, "m": jhpo.uniform(0, 1).when("kind", "sgd")},
     r"parameter 'm': condition on 'kind', an unknown parameter \(did you mean 'o.kind'\?"),
    ({"o": {"kind": jhpo.choice(["sgd"])}, "m": jhpo.uniform(0, 1).when("o", "sgd")},
     r"parameter 'm': condition on 'o', which is a group"),
    ({"o": {"kind": "sgd"}, "m": jhpo.uniform(0, 1).when("o.kind", "sgd")},
     r"parameter 'm': condition on 'o.kind', which is a constant"),
    ({"x": jhpo.uniform(0, 1), "c": jhpo.choice([1]).when("x", gt=1.5)},
     r"parameter 'c': its condition .* never holds for any value of 'x'"),
    ({"x": jhpo.uniform(0, 1), "c": jhpo.choice([1]).when("x", ge=0.7, lt=0.6)},
     r"parameter 'c': its condition .* never holds"),
    ({"n": jhpo.randint(0, 9), "c": jhpo.choice([1]).when("n", 2.5)},
     r"parameter 'c': its condition .* never holds"),
    ({"o": jhpo.ordinal([1, 2, 4]), "c": jhpo.choice([1]).when("o", ge=5)},
     r"parameter 'c': its condition .* never holds"),
    ({"g": {"a": jhpo.uniform(0, 1).when("g.b", gt=0.5), "b": jhpo.uniform(0, 1).when("g.a", gt=0.5)}},
     r"cycle of conditions"),
])
def test_bad_conditions_are_refused_naming_the_parameter(parameters, pattern):
    with pytest.raises(SpaceError, match=pattern):
        Space(parameters)


COMPARE = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


def rows_around(position: int, width: int = 3) -> jnp.ndarray:
    grid = np.clip(np.arange(position - width, position + width + 1), 0, GRID)
    return jnp.asarray(grid / GRID, jnp.float32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([(-3.0, 5.0, False), (1e-300, 1.0, True), (1e10, 1e10 + 2e4, False),
                        (-1e300, 1e300, False), (1e-3, 10.0, True)]),
       st.floats(0.02, 0.98), st.sampled_from(sorted(COMPARE)))
def test_a_child_is_present_exactly_when_its_parents_decoded_value_passes(bounds, fraction, bound):
    lo, hi, log = bounds
    threshold = float(lo * (hi / lo) ** fraction if log else lo + fraction * (hi - lo))
    parent = jhpo.loguniform(lo, hi) if log else jhpo.uniform(lo, hi)
    space = Space({"x": parent, "child": jhpo.randint(0, 1).when("x", **{bound: threshold})})
    # the grid positions next to the threshold, where float rounding would show
    unit = math.log(threshold / lo) / math.log(hi / lo) if log else (threshold - lo) / (hi - lo)
    near = rows_around(round(unit * GRID))
    rows = jnp.stack([near, jnp.full_like(near, 0.75)], axis=1)
    for config in space.to_configs(rows):
        assert ("child" in config) == COMPARE[bound](config["x"], threshold), (config, threshold)


def test_a_threshold_on_the_grid_is_met_at_that_grid_point():
    space = Space({"x": jhpo.uniform(0.0, 1.0), "ge": jhpo.randint(0, 1).when("x", ge=0.5),
                   "gt": jhpo.randint(0, 1).when("x", gt=0.5)})
    step = 1.0 / GRID
    x = jnp.asarray([[0.5 - step], [0.5], [0.5 + step]], jnp.float32)
    rows = jnp.concatenate([x, jnp.full((3, 2), 0.75)], axis=1)
    configs = space.to_configs(rows)
    assert [c["x"] for c in configs] == [0.5 - step, 0.5, 0.5 + step]
    assert [("ge" in c, "gt" in c) for c in configs] == [(False, False), (True, False), (True, True)]


@pytest.mark.parametrize("condition,holds", [
    (dict(ge=2.5), lambda n: n >= 3),
    (dict(gt=2.5), lambda n: n >= 3),
    (dict(le=2.5), lambda n: n <= 2),
    (dict(lt=3), lambda n: n <= 2),
    (dict(gt=3), lambda n: n >= 4),
    (dict(values=(3, 7, 7.5, 12)), lambda n: n in (3, 7)),
    (dict(values=(3, 7), ge=5), lambda n: n == 7),
    (dict(ge=-1e300, le=float("inf")), lambda n: True),
])
def test_integer_parents_compare_exactly(condition, holds):
    values = condition.pop("values", ())
    space = Space({"n": jhpo.randint(0, 9), "c": jhpo.randint(0, 1).when("n", *values, **condition)})
    configs = [{"n": n, "c": 0} if holds(n) else {"n": n} for n in range(10)]
    rows = space.from_configs(configs)
    assert space.to_configs(rows) == configs


def test_ordinal_parents_compare_by_value_not_by_rank():
    space = Space({"o": jhpo.ordinal([10, 1, 100, 5]), "c": jhpo.randint(0, 1).when("o", le=10, gt=1)})
    rows = space.from_configs([{"o": v} | ({"c": 1} if 1 < v <= 10 else {}) for v in (10, 1, 100, 5)])
    assert ["c" in c for c in space.to_configs(rows)] == [True, False, False, True]
    mask = np.asarray(space.column_mask(rows))
    np.testing.assert_array_equal(mask[:, 1], [True, False, False, True])
