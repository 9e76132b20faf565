import json

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jhpo
from jhpo.space import Space, SpaceError
from jhpo.space.nesting import flatten_parameters, nest

KEYS = st.text("abcxyz_", min_size=1, max_size=3)

LEAF_DOMAINS = st.sampled_from([
    jhpo.uniform(-2.0, 3.0), jhpo.loguniform(1e-5, 1e-1), jhpo.randint(0, 9),
    jhpo.lograndint(1, 500), jhpo.choice(["a", None, True, 3]), jhpo.ordinal([1, 10, 100]),
])
LEAVES = st.one_of(LEAF_DOMAINS, LEAF_DOMAINS, st.integers(-3, 3), st.sampled_from(["const", None]))


def nested_dicts(leaves):
    return st.recursive(
        st.dictionaries(KEYS, leaves, min_size=1, max_size=4),
        lambda children: st.dictionaries(KEYS, st.one_of(leaves, children), min_size=1, max_size=3),
        max_leaves=12,
    )


def has_domain(tree) -> bool:
    return any(has_domain(v) if isinstance(v, dict) else isinstance(v, jhpo.space.Float | jhpo.space.Int
                                                                   | jhpo.space.Choice | jhpo.space.Ordinal)
               for v in tree.values())


def shape_of(tree):
    """The nesting of a dict with its leaves blanked out."""
    return {k: shape_of(v) if isinstance(v, dict) else None for k, v in tree.items()}


@settings(max_examples=60, deadline=None)
@given(nested_dicts(st.integers()))
def test_nest_inverts_flatten(tree):
    flat = flatten_parameters(tree)
    assert all(isinstance(name, str) for name in flat)
    assert nest(flat) == tree


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.filter_too_much])
@given(nested_dicts(LEAVES).filter(has_domain), st.integers(0, 2**31 - 1))
def test_nested_spaces_give_nested_configurations_that_read_back_to_the_same_rows(tree, seed):
    space = Space(tree)
    rows = space.sample(jax.random.key(seed), 4)
    configs = space.to_configs(rows)
    for config in configs:
        # no condition here: every configuration has the space's own shape, values at the leaves
        assert shape_of(config) == shape_of(tree)
        json.dumps(config)
    np.testing.assert_array_equal(np.asarray(space.from_configs(configs)), np.asarray(rows))
    for name in space.names:  # a dotted name is the path of keys to its domain
        node = tree
        for key in name.split("."):
            node = node[key]
        assert node is space.domains[name]
    assert set(space.names) | set(space.constants) == set(flatten_parameters(tree))


def test_a_nested_dict_of_domains_is_a_group_not_a_constant():
    space = Space({"lr": jhpo.loguniform(1e-4, 1e-1),
                   "model": {"width": jhpo.randint(8, 64), "act": jhpo.choice(["relu", "gelu"]),
                             "head": {"dropout": jhpo.uniform(0.0, 0.5), "bias": True}},
                   "epochs": 10})
    assert space.names == ("lr", "model.width", "model.act", "model.head.dropout")
    assert space.constants == {"model.head.bias": True, "epochs": 10}
    (config,) = space.to_configs(space.sample(jax.random.key(0), 1))
    assert list(config) == ["lr", "model", "epochs"]
    assert list(config["model"]) == ["width", "act", "head"]
    assert 8 <= config["model"]["width"] <= 64 and config["model"]["act"] in ("relu", "gelu")
    assert 0.0 <= config["model"]["head"]["dropout"] <= 0.5 and config["model"]["head"]["bias"] is True


def test_an_empty_dict_is_a_constant_and_stays_in_configurations():
    space = Space({"x": jhpo.uniform(0, 1), "kwargs": {}})
    assert space.constants == {"kwargs": {}}
    (config,) = space.to_configs(space.sample(jax.random.key(0), 1))
    assert config["kwargs"] == {}


@pytest.mark.parametrize("parameters,pattern", [
    ({"optim.lr": jhpo.uniform(0, 1)}, r"'optim.lr' contains '\.'.*ambiguous"),
    ({"optim": {"lr.max": jhpo.uniform(0, 1)}}, r"'lr.max' \(in 'optim'\) contains '\.'.*ambiguous"),
    ({"": jhpo.uniform(0, 1)}, r"non-empty strings, got ''"),
    ({"a": {3: jhpo.uniform(0, 1)}}, r"non-empty strings, got 3 \(in 'a'\)"),
])
def test_names_that_would_make_dotted_paths_ambiguous_are_refused(parameters, pattern):
    with pytest.raises(SpaceError, match=pattern):
        Space(parameters)


def test_from_configs_reads_nested_configurations_and_names_unknown_keys():
    space = Space({"optim": {"lr": jhpo.loguniform(1e-4, 1e-1), "kind": jhpo.choice(["sgd", "adam"])},
                   "epochs": 3})
    (row,) = space.from_configs([{"optim": {"lr": 1e-2, "kind": "adam"}, "epochs": 3}])
    np.testing.assert_allclose(row, [2 / 3, 0.0, 1.0], atol=1e-6)
    with pytest.raises(SpaceError, match=r"unknown parameters \['optim.momentum'\]"):
        space.from_configs([{"optim": {"lr": 1e-2, "kind": "adam", "momentum": 0.9}}])
    with pytest.raises(SpaceError, match=r"key 'optim.lr' contains '\.': configurations are nested"):
        space.from_configs([{"optim.lr": 1e-2, "optim": {"kind": "adam"}}])
    with pytest.raises(SpaceError, match=r"group 'optim' must be a dict"):
        space.from_configs([{"optim": 0.1}])
    with pytest.raises(SpaceError, match=r"lacks active parameter 'optim.lr'"):
        space.from_configs([{"optim": {"kind": "adam"}}])
