import json
import math

import numpy as np
import pytest

import jhpo
from jhpo.space import Condition, Float, Int, SpaceError

# Each bad input: the call, then a pattern naming the constructor, the argument and the rule.
BAD_DOMAINS = [
    (lambda: jhpo.loguniform(0, 1), r"loguniform\(lo=0, hi=1\): .*lo > 0"),
    (lambda: jhpo.loguniform(-1.0, 1.0), r"loguniform\(lo=-1.0, hi=1.0\): .*lo > 0"),
    (lambda: jhpo.uniform(1, 1), r"uniform\(lo=1, hi=1\): needs lo < hi"),
    (lambda: jhpo.uniform(2.0, 1.0), r"uniform\(lo=2.0, hi=1.0\): needs lo < hi"),
    (lambda: jhpo.uniform(float("nan"), 1), r"uniform\(lo=nan, hi=1\): lo must be a finite number"),
    (lambda: jhpo.uniform(0, float("inf")), r"uniform\(lo=0, hi=inf\): hi must be finite"),
    (lambda: jhpo.uniform(0, 10**400), r"uniform\(lo=0, hi=1000.*\): hi must be finite \(within float64"),
    (lambda: jhpo.uniform("0", 1), r"uniform\(lo='0', hi=1\): lo must be a real number"),
    (lambda: jhpo.uniform(True, 2), r"uniform\(lo=True, hi=2\): lo must be a real number"),
    (lambda: jhpo.randint(5, 1), r"randint\(lo=5, hi=1\): needs lo <= hi"),
    (lambda: jhpo.randint(1.5, 4), r"randint\(lo=1.5, hi=4\): .*integer bounds.*lo=1.5"),
    (lambda: jhpo.randint(0, float("inf")), r"randint\(lo=0, hi=inf\): hi must be an integer"),
    (lambda: jhpo.randint(0, None), r"randint\(lo=0, hi=None\): hi must be an integer"),
    (lambda: jhpo.lograndint(0, 8), r"lograndint\(lo=0, hi=8\): .*lo > 0"),
    (lambda: jhpo.lograndint(-1, 8), r"lograndint\(lo=-1, hi=8\): .*lo > 0"),
    (lambda: jhpo.choice([]), r"choice\(values\): needs at least one value"),
    (lambda: jhpo.ordinal(()), r"ordinal\(values\): needs at least one value"),
    (lambda: jhpo.choice("abc"), r"choice\(values\): .*list or tuple"),
    (lambda: jhpo.choice(["a", "b", "a"]), r"choice\(\['a', 'b', 'a'\]\): duplicate values 'a'"),
    (lambda: jhpo.ordinal([1, 2, 2]), r"ordinal\(\[1, 2, 2\]\): duplicate values 2"),
    (lambda: jhpo.choice([[1], 2]), r"choice\(\[\[1\], 2\]\): value \[1\] is not hashable"),
    (lambda: jhpo.choice([float("nan"), 1.0]), r"choice\(\[nan, 1.0\]\): NaN equals no value"),
]


@pytest.mark.parametrize("build,pattern", BAD_DOMAINS)
def test_bad_domains_fail_when_built_naming_constructor_argument_and_rule(build, pattern):
    with pytest.raises(SpaceError, match=pattern):
        build()


BAD_CONDITIONS = [
    (lambda: jhpo.uniform(0, 1).when("a", ge=float("nan")), r"when\('a'\): ge is NaN"),
    (lambda: jhpo.uniform(0, 1).when("a", lt=float("nan")), r"when\('a'\): lt is NaN"),
    (lambda: jhpo.uniform(0, 1).when("a", float("nan")), r"when\('a'\): a value is NaN"),
    (lambda: jhpo.uniform(0, 1).when("a", le="3"), r"when\('a'\): le must be a real number"),
    (lambda: jhpo.uniform(0, 1).when("a", gt=True), r"when\('a'\): gt must be a real number"),
    (lambda: jhpo.uniform(0, 1).when("a"), r"when\('a'\): give the parent's values or a comparison"),
    (lambda: jhpo.uniform(0, 1).when("", 1), r"when\(''\): the parent must be a parameter's name"),
    (lambda: jhpo.uniform(0, 1).when("opt", ["sgd", "adam"]),
     r"when\('opt'\): value \['sgd', 'adam'\] is not hashable; give the values as separate"),
]


@pytest.mark.parametrize("build,pattern", BAD_CONDITIONS)
def test_bad_conditions_fail_when_attached(build, pattern):
    with pytest.raises(SpaceError, match=pattern):
        build()


def test_records_built_directly_are_checked_too():
    with pytest.raises(SpaceError, match=r"loguniform\(lo=0.0, hi=1.0\)"):
        Float(0.0, 1.0, log=True)
    with pytest.raises(SpaceError, match=r"randint\(lo=3, hi=2\)"):
        Int(3, 2)
    with pytest.raises(SpaceError, match="ge is NaN"):
        Condition("a", ge=math.nan)


def test_bounds_become_plain_python_numbers_for_json():
    domain = jhpo.uniform(np.float32(0.5), np.int64(3))
    assert type(domain.lo) is float and type(domain.hi) is float
    integer = jhpo.randint(np.int64(2), 7.0)
    assert (type(integer.lo), type(integer.hi)) == (int, int) and integer.hi == 7
    json.dumps([domain.lo, domain.hi, integer.lo, integer.hi])


def test_float_ranges_at_the_edges_of_what_is_allowed():
    # lo < hi is strict for floats; an integer range may hold a single value.
    assert jhpo.randint(3, 3).hi == 3
    with pytest.raises(SpaceError, match="lo < hi"):
        jhpo.uniform(3, 3)
    # a width of 1e-6 of the magnitude is allowed, a little less is not
    jhpo.uniform(1e10, 1e10 + 2e4)
    with pytest.raises(SpaceError, match=r"uniform\(lo=10000000000.0, hi=10000000001.0\).*1e-06"):
        jhpo.uniform(1e10, 1e10 + 1)
    with pytest.raises(SpaceError, match=r"loguniform.*1e-06"):
        jhpo.loguniform(1.0, 1.0 + 1e-7)


def test_when_keeps_the_domain_and_attaches_the_condition():
    base = jhpo.loguniform(1e-3, 1.0)
    conditional = base.when("optim.kind", "sgd", "nesterov")
    assert (conditional.lo, conditional.hi, conditional.log) == (base.lo, base.hi, base.log)
    assert conditional.condition == Condition("optim.kind", ("sgd", "nesterov"))
    assert base.condition is None
