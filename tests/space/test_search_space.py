import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jhpo
from jhpo.space import Space, SpaceError

# ----------------------------------------------------------------------------- strategies

CHOICE_VALUES = st.lists(
    st.one_of(st.text(max_size=4), st.integers(-5, 5), st.booleans(), st.none()),
    min_size=1, max_size=5, unique_by=lambda v: (type(v) is bool, v),
)


@st.composite
def domains(draw):
    kind = draw(st.sampled_from(["uniform", "loguniform", "randint", "lograndint", "choice", "ordinal"]))
    if kind == "uniform":
        lo = draw(st.floats(-100, 100))
        return jhpo.uniform(lo, lo + draw(st.floats(0.01, 100)))
    if kind == "loguniform":
        lo = draw(st.floats(1e-8, 10))
        return jhpo.loguniform(lo, lo * draw(st.floats(1.5, 1e6)))
    if kind == "randint":
        lo = draw(st.integers(-50, 50))
        return jhpo.randint(lo, lo + draw(st.integers(1, 100)))
    if kind == "lograndint":
        lo = draw(st.integers(1, 50))
        return jhpo.lograndint(lo, lo + draw(st.integers(1, 1000)))
    values = draw(CHOICE_VALUES)
    return jhpo.choice(values) if kind == "choice" else jhpo.ordinal(values)


spaces = st.dictionaries(st.sampled_from("abcdefgh"), domains(), min_size=1, max_size=6).map(Space)


@st.composite
def space_and_config(draw):
    space = draw(spaces)
    config = {}
    for name, domain in space.domains.items():
        if isinstance(domain, jhpo.space.Float):
            config[name] = draw(st.floats(domain.lo, domain.hi))
        elif isinstance(domain, jhpo.space.Int):
            config[name] = draw(st.integers(domain.lo, domain.hi))
        else:
            config[name] = draw(st.sampled_from(domain.values))
    return space, config


def same_value(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=2e-5, abs_tol=2e-5 * max(1.0, abs(b)))
    return type(a) is type(b) and a == b


# ----------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space_and_config())
def test_decode_of_encode_is_the_configuration(space_config):
    space, config = space_config
    (decoded,) = space.to_configs(space.from_configs([config]))
    assert decoded.keys() == config.keys()
    for name in config:
        assert same_value(decoded[name], config[name]), (name, decoded[name], config[name])


def expected_neighbours(space, config):
    """The configurations one discrete step from ``config``, built value by value, in the
    order ``lattice_neighbours`` promises (parameters in order, down before up)."""
    expected = []
    for name, domain in space.domains.items():
        if isinstance(domain, jhpo.space.Int):
            steps = [max(config[name] - 1, domain.lo), min(config[name] + 1, domain.hi)]
        elif isinstance(domain, jhpo.space.Ordinal):
            i = space.index_of(name, config[name])
            steps = [domain.values[max(i - 1, 0)], domain.values[min(i + 1, len(domain.values) - 1)]]
        elif isinstance(domain, jhpo.space.Choice):
            i = space.index_of(name, config[name])
            steps = [domain.values[(i + k) % len(domain.values)] for k in range(1, len(domain.values))]
        else:
            steps = []
        expected += [{**config, name: value} for value in steps]
    return expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space_and_config())
def test_lattice_neighbours_step_one_discrete_parameter_at_a_time(space_config):
    space, config = space_config
    row = space.from_configs([config])
    (decoded,) = space.to_configs(row)
    expected = expected_neighbours(space, decoded)
    neighbours = space.lattice_neighbours(row)
    assert neighbours.shape == (1, space.num_lattice_neighbours, space.dim)
    assert len(expected) == space.num_lattice_neighbours
    # Canonical up to float32 rounding: XLA may divide by a bin count as a multiplication
    # by its reciprocal, one unit in the last place away from eager code.
    np.testing.assert_allclose(neighbours[0], space.canonicalize(neighbours[0]), atol=1e-6)
    for got, wanted in zip(space.to_configs(neighbours[0]) if expected else [], expected):
        assert got.keys() == wanted.keys()
        assert all(same_value(got[k], wanted[k]) for k in wanted), (got, wanted)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spaces, st.integers(0, 2**31 - 1))
def test_samples_stay_in_bounds_and_integers_are_integers(space, seed):
    rows = space.sample(jax.random.key(seed), 16)
    assert rows.shape == (16, space.dim)
    assert bool(jnp.all((rows >= 0) & (rows <= 1)))
    for config in space.to_configs(rows):
        for name, domain in space.domains.items():
            value = config[name]
            if isinstance(domain, jhpo.space.Float):
                assert isinstance(value, float) and domain.lo <= value <= domain.hi
            elif isinstance(domain, jhpo.space.Int):
                assert type(value) is int and domain.lo <= value <= domain.hi
            else:
                assert any(same_value(value, v) for v in domain.values)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spaces, st.integers(0, 2**31 - 1))
def test_canonicalize_is_idempotent(space, seed):
    rows = jax.random.uniform(jax.random.key(seed), (8, space.dim))
    once = space.canonicalize(rows)
    np.testing.assert_array_equal(np.asarray(space.canonicalize(once)), np.asarray(once))


def test_loguniform_samples_are_uniform_in_log_space():
    space = Space({"lr": jhpo.loguniform(1e-5, 1e-1)})
    values = np.asarray(space.decode(space.sample(jax.random.key(0), 4000))["lr"])
    logs = np.log(values)
    result = scipy.stats.kstest(logs, scipy.stats.uniform(np.log(1e-5), np.log(1e-1) - np.log(1e-5)).cdf)
    assert result.pvalue > 0.01
    # and clearly not uniform on the linear scale
    assert scipy.stats.kstest(values, scipy.stats.uniform(1e-5, 1e-1).cdf).pvalue < 1e-6


@pytest.mark.parametrize("domain,support", [
    (jhpo.randint(3, 9), list(range(3, 10))),
    (jhpo.choice(["a", "b", None, True]), ["a", "b", None, True]),
    (jhpo.ordinal([1, 10, 100]), [1, 10, 100]),
])
def test_discrete_samples_are_uniform_over_their_values(domain, support):
    space = Space({"p": domain})
    draws = [c["p"] for c in space.to_configs(space.sample(jax.random.key(1), 3000))]
    counts = [sum(1 for d in draws if same_value(d, v)) for v in support]
    assert sum(counts) == len(draws)
    assert scipy.stats.chisquare(counts).pvalue > 0.01


def test_lograndint_matches_its_log_scale_bins():
    # Each integer v owns [v - 0.5, v + 0.5] of a log-uniform draw on [lo - 0.5, hi + 0.5].
    space = Space({"n": jhpo.lograndint(1, 1000)})
    draws = np.array([c["n"] for c in space.to_configs(space.sample(jax.random.key(2), 4000))])
    edges = np.array([0.5, 10.5, 100.5, 1000.5])
    expected = np.diff(np.log(edges)) / (np.log(edges[-1]) - np.log(edges[0]))
    observed = np.histogram(draws, bins=edges)[0]
    assert observed.sum() == len(draws)
    assert scipy.stats.chisquare(observed, expected * len(draws)).pvalue > 0.01


def test_pure_functions_jit_and_vmap():
    space = Space({"x": jhpo.uniform(-1, 1), "k": jhpo.randint(0, 4), "c": jhpo.choice(["p", "q"])})
    rows = jax.random.uniform(jax.random.key(0), (3, 5, space.dim))
    batched = jax.jit(jax.vmap(space.canonicalize))(rows)
    for i in range(3):
        np.testing.assert_allclose(batched[i], space.canonicalize(rows[i]), atol=1e-6)
    decoded = jax.jit(space.decode)(rows[0])
    assert decoded["k"].dtype == jnp.int32 and decoded["x"].dtype == jnp.float32


def test_encoding_layout_one_hot_and_rank_columns():
    space = Space({"lr": jhpo.loguniform(1e-3, 1e-1), "opt": jhpo.choice(["sgd", "adam", "rms"]),
                   "depth": jhpo.ordinal([2, 4, 8, 16]), "fixed": 3})
    assert space.dim == 1 + 3 + 1
    (row,) = space.from_configs([{"lr": 1e-2, "opt": "adam", "depth": 8}])
    np.testing.assert_allclose(row, [0.5, 0.0, 1.0, 0.0, (2 + 0.5) / 4], atol=1e-6)
    assert space.to_configs(row[None])[0]["fixed"] == 3


# ----------------------------------------------------------------------------- conditions


def conditional_space():
    return Space({
        "optimizer": jhpo.choice(["sgd", "adam"]),
        "momentum": jhpo.uniform(0.0, 0.99).when("optimizer", "sgd"),
        "nesterov": jhpo.choice([False, True]).when("momentum", gt=0.5),
        "num_layers": jhpo.randint(1, 4),
        "units_3": jhpo.randint(8, 64).when("num_layers", ge=3),
    })


def expected_active(config):
    active = {"optimizer", "num_layers"}
    if config["optimizer"] == "sgd":
        active.add("momentum")
        if config["momentum"] > 0.5:
            active.add("nesterov")
    if config["num_layers"] >= 3:
        active.add("units_3")
    return active


def test_conditional_parameters_are_present_exactly_when_active():
    space = conditional_space()
    configs = space.to_configs(space.sample(jax.random.key(3), 400))
    for config in configs:
        assert set(config) == expected_active(config)
    # every branch is actually exercised
    assert any("nesterov" in c for c in configs) and any("units_3" in c for c in configs)
    assert any("momentum" not in c for c in configs)


def test_inactive_columns_are_zero_and_masked():
    space = conditional_space()
    rows = space.from_configs([{"optimizer": "adam", "num_layers": 1}])
    mask = np.asarray(space.column_mask(rows))[0]
    momentum = space.columns[space.names.index("momentum")]
    assert not mask[momentum.start] and float(rows[0, momentum.start]) == 0.0
    assert mask[space.columns[0].start]


def test_lattice_neighbours_switch_children_with_their_parent_and_skip_inactive_ones():
    space = conditional_space()
    row = space.from_configs([{"optimizer": "adam", "num_layers": 2}])
    neighbours = space.to_configs(space.lattice_neighbours(row)[0])
    # optimizer -> sgd turns momentum on (at its zero column); nesterov and units_3 are
    # inactive, so their steps give the row back; num_layers 3 turns units_3 on.
    assert neighbours[0] == {"optimizer": "sgd", "momentum": 0.0, "num_layers": 2}
    unchanged = {"optimizer": "adam", "num_layers": 2}
    assert neighbours[1] == unchanged  # nesterov's one other value
    assert neighbours[2] == {"optimizer": "adam", "num_layers": 1}
    assert neighbours[3] == {"optimizer": "adam", "num_layers": 3, "units_3": 8}
    assert neighbours[4:] == [unchanged, unchanged]  # units_3 down and up


def test_missing_active_parameter_is_an_error():
    with pytest.raises(SpaceError, match="momentum"):
        conditional_space().from_configs([{"optimizer": "sgd", "num_layers": 1}])


# ----------------------------------------------------------------------------- bad spaces


@pytest.mark.parametrize("parameters,pattern", [
    ({"m": jhpo.uniform(0, 1).when("optimizer", "sgd")}, r"'m'.*'optimizer'.*unknown parameter"),
    ({"a": jhpo.uniform(0, 1).when("b", gt=0.5), "b": jhpo.uniform(0, 1).when("a", gt=0.5)},
     r"cycle of conditions"),
    ({"opt": jhpo.choice(["sgd"]), "m": jhpo.uniform(0, 1).when("opt", "adam")},
     r"'m'.*'adam' is not one of"),
    ({"opt": jhpo.choice(["sgd", "adam"]), "m": jhpo.uniform(0, 1).when("opt", ge=1)},
     r"'m'.*numeric parent"),
])
def test_bad_spaces_fail_with_the_parameter_and_rule(parameters, pattern):
    with pytest.raises(SpaceError, match=pattern):
        Space(parameters)


def test_out_of_range_configuration_is_rejected():
    space = Space({"x": jhpo.uniform(0, 1)})
    with pytest.raises(SpaceError, match=r"'x'.*outside"):
        space.from_configs([{"x": 2.0}])
    with pytest.raises(SpaceError, match="unknown parameters"):
        space.from_configs([{"x": 0.5, "y": 1}])


@pytest.mark.parametrize("parameters,pattern", [
    ({}, r"at least one tunable domain.*holds nothing"),
    ({"epochs": 10, "model": {"width": 64}}, r"at least one tunable domain.*only constants \(epochs, model.width\)"),
    ({"layers": [jhpo.uniform(0, 1), jhpo.uniform(0, 1)]}, r"'layers': a list holding domains"),
    ({"x": jhpo.uniform(0, 1), "inner": Space({"y": jhpo.uniform(0, 1)})}, r"'inner': a Space inside a space"),
])
def test_spaces_without_tunable_domains_or_with_hidden_ones_are_refused(parameters, pattern):
    with pytest.raises(SpaceError, match=pattern):
        Space(parameters)


def test_describe_is_flat_deterministic_json():
    def build():
        return Space({"lr": jhpo.loguniform(1e-4, 1e-1),
                      "optim": {"kind": jhpo.choice(["sgd", None]),
                                "momentum": jhpo.uniform(0, 0.9).when("optim.kind", "sgd")},
                      "epochs": 5})
    description = build().describe()
    assert list(description) == ["lr", "optim.kind", "optim.momentum", "epochs"]
    assert description["optim.momentum"]["when"] == {"parent": "optim.kind", "values": ["sgd"]}
    text = json.dumps(description, sort_keys=True)
    assert json.loads(text) == description and json.dumps(build().describe(), sort_keys=True) == text
    assert build() == build() and hash(build()) == hash(build())
    # a flat space describes itself as it always has
    assert Space({"x": jhpo.uniform(0, 1), "k": 3}).describe() == {
        "x": {"type": "uniform", "lo": 0, "hi": 1}, "k": {"type": "constant", "value": 3}}


def test_optimizer_asks_and_is_told_nested_configurations():
    space = {"optim": {"lr": jhpo.loguniform(1e-4, 1e-1), "kind": jhpo.choice(["sgd", "adam"])},
             "epochs": 2}
    optimizer = jhpo.Optimizer(space, searcher="random", seed=0)
    configs = optimizer.ask(3)
    for config in configs:
        assert config["epochs"] == 2 and set(config["optim"]) == {"lr", "kind"}
        assert isinstance(config["optim"]["lr"], float) and 1e-4 <= config["optim"]["lr"] <= 1e-1
    optimizer.tell(configs, [0.3, 0.1, 0.2])
    assert len(optimizer.ask(2)) == 2


def test_rows_with_nan_or_outside_the_cube_still_canonicalize_into_it():
    space = Space({"x": jhpo.uniform(-1, 1), "n": jhpo.randint(0, 5), "c": jhpo.choice(["a", "b"]),
                   "o": jhpo.ordinal([1, 2, 3])})
    rows = jnp.asarray([[jnp.nan, jnp.nan, jnp.nan, jnp.nan, jnp.nan],
                        [2.0, -3.0, 0.2, 0.9, jnp.inf]], jnp.float32)
    canonical = np.asarray(space.canonicalize(rows))
    np.testing.assert_allclose(canonical[0], [0.0, 0.5 / 6, 1.0, 0.0, 0.5 / 3], rtol=1e-6)
    np.testing.assert_allclose(canonical[1], [1.0, 0.5 / 6, 0.0, 1.0, 2.5 / 3], rtol=1e-6)
