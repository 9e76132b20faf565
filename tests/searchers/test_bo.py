"""The "bo" searcher: validity of its proposals, robustness, compilation, and that it searches."""

import threading
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo import problems
from jhpo.searchers import make
from jhpo.searchers.base import Buffer, append
from jhpo.searchers.bo import Outputs, explores_at, kernels, make_config, rows_since_best, targets
from jhpo.searchers.bo.options import config_for_ask
from jhpo.searchers.random import halton_rows
from jhpo.space import Space

# One space and one set of options for most tests, so they share compiled kernels.
SPACE = Space({"x": jhpo.uniform(0.0, 1.0), "n": jhpo.randint(1, 6),
               "c": jhpo.choice(["a", "b", "c"])})
OPTIONS = {"num_initial": 3, "num_screen": 256, "num_starts": 4, "ascent_steps": 15,
           "fit_evaluations": 15, "num_restarts": 8}


sample = jax.jit(SPACE.sample, static_argnums=1)
canonicalize = jax.jit(SPACE.canonicalize)


def objective(rows):
    """A smooth function of the row (minimum near x = 0.3, n = 4, c = "b")."""
    rows = np.asarray(rows, np.float64)
    return ((rows[:, 0] - 0.3) ** 2 + (rows[:, 1] - 0.6) ** 2 + rows[:, 2] + rows[:, 4]).astype(np.float32)


def observed_state(searcher, rows, values):
    return searcher.tell(searcher.init(jax.random.key(0)), rows, jnp.asarray(values, jnp.float32))


def assert_fresh_valid_rows(rows, state_before):
    rows = np.asarray(rows)
    np.testing.assert_array_equal(rows, np.asarray(canonicalize(jnp.asarray(rows))))
    assert len({r.tobytes() for r in rows}) == len(rows), "rows are not distinct"
    for buffer in (state_before.observed, state_before.pending):
        taken = np.asarray(buffer.x)[np.asarray(buffer.mask)]
        for row in rows:
            assert not any(np.array_equal(row, t) for t in taken), "row already observed or pending"


def test_batch_ask_returns_distinct_fresh_valid_rows():
    searcher = make("bo", SPACE, **OPTIONS)
    rows = sample(jax.random.key(1), 6)
    state = observed_state(searcher, rows, objective(rows))
    batch, state_after, _ = searcher.ask(state, jax.random.key(2), 4)
    assert batch.shape == (4, SPACE.dim) and batch.dtype == jnp.float32
    assert_fresh_valid_rows(batch, state)
    assert state_after.pending.count == 4
    # With those four still pending, the next ask avoids them too.
    more, _, _ = searcher.ask(state_after, jax.random.key(3), 2)
    assert_fresh_valid_rows(more, state_after)


def test_duplicate_rows_constant_values_and_failures_give_finite_fresh_rows():
    searcher = make("bo", SPACE, **OPTIONS)
    base = sample(jax.random.key(4), 3)
    cases = {
        "duplicates": (jnp.concatenate([base, base]), np.arange(6.0) % 4),
        "constant": (sample(jax.random.key(5), 6), np.full(6, 2.5)),
        "failed": (sample(jax.random.key(6), 6), [1.0, np.nan, 0.5, np.nan, 2.0, 0.1]),
        "all failed": (sample(jax.random.key(7), 4), np.full(4, np.nan)),
    }
    for name, (rows, values) in cases.items():
        state = observed_state(searcher, rows, values)
        batch, state_after, _ = searcher.ask(state, jax.random.key(8), 2)
        assert np.all(np.isfinite(np.asarray(batch))), name
        assert all(np.all(np.isfinite(np.asarray(p))) for p in state_after.params), name
        assert_fresh_valid_rows(batch, state)


def test_single_observation_is_enough():
    searcher = make("bo", SPACE, **{**OPTIONS, "num_initial": 1})
    rows = sample(jax.random.key(9), 1)
    state = observed_state(searcher, rows, [0.7])
    batch, _, _ = searcher.ask(state, jax.random.key(10), 1)
    assert np.all(np.isfinite(np.asarray(batch)))
    assert_fresh_valid_rows(batch, state)


HOST_READS = ("__int__", "__float__", "__bool__", "__index__", "__array__", "item", "tolist")


def count_host_reads(monkeypatch) -> list:
    """Record every conversion of a JAX array to a host value from now on: each waits for
    the device (``int(x)``, ``bool(x)``, ``x.tolist()``, ...)."""
    reads = []
    array_type = type(jnp.zeros(()))
    for name in HOST_READS:
        def read(self, *args, _original=getattr(array_type, name), _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(array_type, name, read)
    return reads


@pytest.mark.parametrize("num_told", [1, 5], ids=["initial design", "model"])
def test_an_ask_reads_the_device_once_and_grows_pending_as_append_does(monkeypatch, num_told):
    searcher = make("bo", SPACE, **OPTIONS)
    rows = sample(jax.random.key(13), num_told)
    state = observed_state(searcher, rows, objective(rows))
    num_asked = 9 if num_told < OPTIONS["num_initial"] else 2  # 9 outgrow 8 pending slots
    searcher.ask(state, jax.random.key(14), num_asked)  # compiled before counting
    reads = count_host_reads(monkeypatch)
    asked, state_after, _ = searcher.ask(state, jax.random.key(15), num_asked)
    assert reads == ["tolist"]  # the fill levels, read together (read_fill_levels)
    monkeypatch.undo()
    expected = append(state.pending, asked)
    for ours, reference in zip(state_after.pending, expected):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(reference))


def test_failed_trials_are_read_as_the_worst_value():
    observed = Buffer(
        x=jnp.zeros((4, 2)), y=jnp.asarray([1.0, jnp.nan, 3.0, jnp.nan]),
        mask=jnp.asarray([True, True, True, False]))
    with jax.enable_x64(True):
        imputed = targets.output_targets(Outputs(), observed, None)
    np.testing.assert_array_equal(np.asarray(imputed)[:3, 0], [1.0, 3.0, 3.0])


def test_a_used_up_discrete_space_says_so_in_what_ask_returns():
    tiny = Space({"n": jhpo.randint(1, 3), "c": jhpo.choice(["a", "b"])})  # 6 configurations
    searcher = make("bo", tiny, **{**OPTIONS, "num_initial": 2})
    state = searcher.init(jax.random.key(0))
    seen = set()
    for i in range(6):
        row, state, fresh = searcher.ask(state, jax.random.key(i), 1)
        assert bool(fresh[0])
        seen.add(np.asarray(row).tobytes())
        state = searcher.tell(state, row, jnp.asarray([float(i)]))
    assert len(seen) == 6  # every configuration once, none twice
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the kernel itself no longer warns
        row, _, fresh = searcher.ask(state, jax.random.key(6), 1)
    assert not bool(fresh[0]) and np.asarray(row).tobytes() in seen


def test_the_optimizer_warns_when_the_searcher_repeats_a_configuration():
    tiny = {"c": jhpo.choice(["a", "b"])}
    opt = jhpo.Optimizer(tiny, "bo", seed=0, searcher_options={**OPTIONS, "num_initial": 1})
    for value in (1.0, 2.0):
        configs = opt.ask(1)
        opt.tell(configs, [value])
    with pytest.warns(UserWarning, match="1 of the 1 asked"):
        opt.ask(1)


BRANIN = problems.branin()
# 20 quasi-random trials, then 20 model-based ones that meet two buffer capacities
# (32 and 64 rows). Options of their own (the space's) so that no other test has
# compiled these kernels already.
BRANIN_OPTIONS = {**OPTIONS, "num_initial": 20}
BRANIN_ASKS = 40


class BraninRun(NamedTuple):
    values: list  # one per ask, in order
    capacities: list  # (observed, pending) capacities after each ask's tell
    compiles: list  # backend compilations during each ask
    cache_growth: list  # new entries in the fit and proposal kernels' caches


@pytest.fixture(scope="module")
def branin_run() -> BraninRun:
    """One sequential BO run on Branin, shared by the tests of compilation and of
    search quality (compiling the kernels is most of its cost)."""
    searcher = make("bo", BRANIN.space, **BRANIN_OPTIONS)
    compiled = (kernels.fit_kernel, kernels.propose_kernel)
    cached_before = [kernel._cache_size() for kernel in compiled]
    events = []
    listener = lambda event, *_, **__: events.append(event)  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    run = BraninRun([], [], [], [])
    try:
        state = searcher.init(jax.random.key(0))
        for i in range(BRANIN_ASKS):
            before = len(events)
            row, state, _ = searcher.ask(state, jax.random.key(i), 1)
            with jax.enable_x64(True):
                value = BRANIN(BRANIN.space.to_configs(row)[0])
            state = searcher.tell(state, row, jnp.asarray([value], jnp.float32))
            run.values.append(value)
            run.compiles.append(len([e for e in events[before:]
                                     if e.endswith("backend_compile_duration")]))
            run.capacities.append((state.observed.capacity, state.pending.capacity))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    run.cache_growth.extend(kernel._cache_size() - cached for kernel, cached
                            in zip(compiled, cached_before))
    return run


def test_compiles_once_per_capacity_over_40_asks(branin_run):
    capacities, num_initial = branin_run.capacities, BRANIN_OPTIONS["num_initial"]
    # Each kernel compiled once per capacity it met: 20..39 observations sit in buffers
    # of 32 and 64 rows, with at most one row pending.
    bo_capacities = {capacities[i - 1] for i in range(num_initial, BRANIN_ASKS)}
    assert len(bo_capacities) == 2
    assert branin_run.cache_growth == [2, 2]
    # Compilation happens only when something new is met: the first ask, the first
    # model-based ask, a tell that grows a buffer, or the first ask after that.
    for i, count in enumerate(branin_run.compiles):
        grew = capacities[i] != capacities[i - 1] or (i >= 2 and capacities[i - 1] != capacities[i - 2])
        if i in (0, num_initial) or grew:
            continue
        assert count == 0, f"ask {i} compiled {count} programs without a capacity change"


def test_bo_beats_random_on_branin(branin_run):
    def random_regret(seed):
        searcher = make("random", BRANIN.space)
        state, best = searcher.init(jax.random.key(seed)), np.inf
        for i in range(BRANIN_ASKS):
            row, state, _ = searcher.ask(state, jax.random.key(100 * seed + i), 1)
            with jax.enable_x64(True):
                value = BRANIN(BRANIN.space.to_configs(row)[0])
            best = min(best, value)
            state = searcher.tell(state, row, jnp.asarray([value], jnp.float32))
        return BRANIN.regret(best)

    bo_regret = BRANIN.regret(min(branin_run.values))
    random_regrets = [random_regret(seed) for seed in range(5)]
    assert bo_regret < 0.25 * np.median(random_regrets), (bo_regret, random_regrets)


def test_scoped_precision_leaves_float32_training_alone():
    def train_step(w, x):
        loss = lambda w: jnp.mean((jnp.tanh(x @ w) - 1.0) ** 2)  # noqa: E731
        return w - 0.1 * jax.grad(loss)(w)

    step = jax.jit(train_step)
    w, x = jnp.ones((3, 2)) * 0.1, jnp.ones((4, 3))
    searcher = make("bo", SPACE, **OPTIONS)
    rows = sample(jax.random.key(1), 6)
    state = observed_state(searcher, rows, objective(rows))
    results = {}
    worker = threading.Thread(target=lambda: results.update(rows=searcher.ask(state, jax.random.key(2), 2)[0]))
    worker.start()
    during = step(w, x)  # trains while the searcher works in float64 on another thread
    worker.join()
    after = step(w, x)
    assert jax.config.jax_enable_x64 is False
    assert during.dtype == jnp.float32 and after.dtype == jnp.float32
    assert jnp.ones(2).dtype == jnp.float32
    assert results["rows"].dtype == jnp.float32


def test_works_through_optimizer_and_tune():
    opt = jhpo.Optimizer(SPACE, searcher="bo", seed=0, searcher_options=OPTIONS)
    for _ in range(3):
        configs = opt.ask(2)
        opt.tell(configs, [c["x"] + c["n"] / 10 for c in configs])
    assert len(opt.ask(1)) == 1

    def bowl(config):
        return (config["x"] - 0.3) ** 2 + config["n"] / 10

    # Minimising the bowl and minimising its negative: the same initial design, then
    # model-based trials that go down the bowl in one run and up it in the other.
    down, up = (jhpo.tune(lambda c, sign=sign: sign * bowl(c), SPACE, searcher="bo",
                          num_trials=6, seed=1, progress=False, searcher_options=OPTIONS)
                for sign in (1.0, -1.0))
    initial = OPTIONS["num_initial"]
    assert len(down.trials) == 6
    assert [t.config for t in down.trials[:initial]] == [t.config for t in up.trials[:initial]]
    # A searcher blind to the values would propose the same rows in both runs.
    down_values = [bowl(t.config) for t in down.trials[initial:]]
    up_values = [bowl(t.config) for t in up.trials[initial:]]
    assert np.mean(down_values) + 0.2 < np.mean(up_values), (down_values, up_values)
    assert down.best.value == min(t.value for t in down.trials)


def test_large_buffers_screen_fewer_random_rows():
    config = make_config(SPACE).propose.maximize
    assert kernels.screen_effort(config, 128) == config
    fewer = kernels.screen_effort(config, 1024)
    assert fewer.num_screen == config.num_screen // 8
    assert fewer._replace(num_screen=config.num_screen) == config  # nothing else changes
    # Never fewer rows than ascent starts.
    tiny = config._replace(num_screen=16)
    assert kernels.screen_effort(tiny, 4096).num_screen == config.num_starts


@pytest.mark.parametrize("options, parameter", [
    ({"num_initial": 0}, "num_initial"),
    ({"acquisition": "ei"}, "acquisition"),
    ({"num_restarts": 0}, "num_restarts"),
    ({"refit_growth": 0.5}, "refit_growth"),
    ({"ucb_beta": -1.0}, "ucb_beta"),
    ({"fit_subset": 1.5}, "fit_subset"),
    ({"num_local": -1}, "num_local"),
    ({"liar": "median"}, "liar"),
    ({"explore_after": -1}, "explore_after"),
    ({"explore_after": 2.5}, "explore_after"),
])
def test_bad_options_name_the_parameter(options, parameter):
    with pytest.raises(ValueError, match=parameter):
        make("bo", SPACE, **options)


@pytest.mark.parametrize("liar, reference", [("mean", np.mean), ("worst", np.max), ("best", np.min)])
def test_the_constant_lie_is_the_chosen_statistic_of_the_observed_values(liar, reference):
    values = np.random.default_rng(0).normal(size=12)
    mask = np.arange(12) < 9  # the last three slots are empty and must not count
    lie = kernels.constant_lie(liar, jnp.asarray(values), jnp.asarray(mask))
    np.testing.assert_allclose(float(lie), reference(values[:9]), rtol=1e-6)


def test_ucb_acquisition_proposes_fresh_rows():
    searcher = make("bo", SPACE, **{**OPTIONS, "acquisition": "ucb"})
    rows = sample(jax.random.key(11), 5)
    state = observed_state(searcher, rows, objective(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch, _, _ = searcher.ask(state, jax.random.key(12), 2)
    assert_fresh_valid_rows(batch, state)


def test_the_believer_lie_leaves_the_objectives_mean_and_shrinks_its_variance_at_pending_rows():
    # Conditioning on the GP's own prediction at a pending row is no news for the mean
    # anywhere, and certainty at that row: compared against the observed-only GP.
    from jhpo import gp

    with jax.enable_x64(True):
        key_x, key_p, key_q = jax.random.split(jax.random.key(5), 3)
        x = jax.random.uniform(key_x, (10, 2), jnp.float64)
        y = jnp.sin(6 * x[:, 0]) + x[:, 1]
        pending = jax.random.uniform(key_p, (3, 2), jnp.float64)
        query = jnp.concatenate([jax.random.uniform(key_q, (5, 2), jnp.float64), pending])
        mask = jnp.ones(10, bool)
        params = jax.tree.map(lambda p: p.astype(jnp.float64), gp.default_params(2))
        lies = kernels.pending_lies("believer", params, x, y, mask, pending)
        before = gp.predict(gp.posterior(params, x, y, mask), query)
        after = gp.predict(gp.posterior(params, jnp.concatenate([x, pending]),
                                        jnp.concatenate([y, lies]), jnp.ones(13, bool)), query)
        (mean_before, variance_before), (mean_after, variance_after) = jax.device_get((before, after))
    np.testing.assert_allclose(mean_after, mean_before, rtol=1e-6, atol=1e-8)
    assert np.all(variance_after[-3:] < 0.5 * variance_before[-3:])


@pytest.mark.parametrize("liar, n, resolved", [("auto", 1, "believer"), ("auto", 4, "best"),
                                               ("worst", 1, "worst"), ("mean", 4, "mean")])
def test_auto_liar_believes_the_gp_for_one_row_and_takes_the_best_value_for_a_batch(liar, n, resolved):
    config = make_config(SPACE, liar=liar)
    assert config_for_ask(config, n).propose.liar == resolved


def test_an_unresolved_liar_never_reaches_the_kernel():
    with pytest.raises(ValueError, match="liar='auto'"):
        kernels.constant_lie("auto", jnp.zeros(3), jnp.ones(3, bool))
def test_a_stalled_search_explores_every_other_row_until_one_improves():
    config = make_config(SPACE, num_initial=5, explore_after=4)
    # since_best grows by one per row that does not improve; the stall counts from the
    # end of the initial design even when its best row came early.
    exploring = [i for i in range(5, 40) if explores_at(config, i, since_best=i - 1)]
    assert exploring == list(range(9, 40, 2))
    assert len(exploring) / len(range(9, 40)) == pytest.approx(0.5, abs=0.02)
    # An improvement (since_best back to 0) stops it; a stall of 4 rows starts it again.
    assert [explores_at(config, 30 + k, since_best=k) for k in range(7)] == \
        [False, False, False, False, True, False, True]
    assert not any(explores_at(config, i, since_best=i) for i in range(5))  # initial design


@pytest.mark.parametrize("options", [{"explore_after": 0}, {"num_objectives": 2},
                                     {"num_constraints": 1}, {"multi_fidelity": True}])
def test_no_exploring_rows_when_off_or_when_improving_is_not_one_number(options):
    config = make_config(SPACE, **{"num_initial": 3, "explore_after": 2, **options})
    assert not any(explores_at(config, i, since_best=i) for i in range(100))


def test_rows_since_best_counts_the_rows_told_after_the_lowest_value():
    buffer = append(Buffer(jnp.zeros((4, 2)), jnp.zeros(4), jnp.zeros(4, bool)),
                    jnp.zeros((6, 2)), jnp.asarray([3.0, 1.0, jnp.nan, 2.0, 1.0, 5.0]))
    assert int(rows_since_best(buffer)) == 4  # the first 1.0 stays the best
    failed = append(Buffer(jnp.zeros((4, 2)), jnp.zeros(4), jnp.zeros(4, bool)),
                    jnp.zeros((3, 2)), jnp.full(3, jnp.nan))
    assert int(rows_since_best(failed)) == 3


def test_exploring_rows_continue_the_halton_design_in_single_and_batch_asks():
    options = {**OPTIONS, "explore_after": 2}
    searcher = make("bo", SPACE, **options)
    config = make_config(SPACE, **options)
    state = searcher.init(jax.random.key(0))
    index, since_best, explored = 0, 0, 0
    for step, n in enumerate([1, 1, 1, 1, 1, 1, 3, 2, 1]):
        rows, state, fresh = searcher.ask(state, jax.random.key(step), n)
        assert bool(fresh.all())
        for k, row in enumerate(np.asarray(rows)):
            if index < config.num_initial or explores_at(config, index, since_best + k):
                halton = np.asarray(halton_rows(SPACE, state.permutations, index, 1)[0])
                np.testing.assert_array_equal(row, halton)
                explored += index >= config.num_initial
            index += 1
        # Values that rise from the first row on: nothing after it improves.
        values = np.arange(index - n, index, dtype=np.float32)
        state = searcher.tell(state, rows, jnp.asarray(values))
        since_best = index - 1
    # Three initial rows, then a stall of two rows: indices 5, 7, 9 and 11 (two of them
    # inside batch asks, where the pending rows count as not improving).
    assert explored == 4


def test_an_all_integer_space_is_searched_without_repeating_a_point():
    grid = Space({"a": jhpo.randint(1, 3), "b": jhpo.randint(0, 3)})  # 12 points
    searcher = make("bo", grid, **{**OPTIONS, "num_initial": 2})
    state = searcher.init(jax.random.key(0))
    seen = set()
    for i in range(12):
        row, state, fresh = searcher.ask(state, jax.random.key(i), 1)
        (config,) = grid.to_configs(row)
        assert bool(fresh[0]) and (config["a"], config["b"]) not in seen
        seen.add((config["a"], config["b"]))
        value = (config["a"] - 2) ** 2 + (config["b"] - 1) ** 2
        state = searcher.tell(state, row, jnp.asarray([float(value)]))
    assert len(seen) == 12


def test_the_incumbents_lattice_neighbours_are_screened():
    # One random row screened, no local rows, no ascent: without the incumbent's lattice
    # neighbours among the candidates, a step of one from it would be a 2-in-1000 chance.
    wide = Space({"n": jhpo.randint(0, 999)})
    searcher = make("bo", wide, num_initial=5, num_screen=1, num_starts=1, num_local=0,
                    ascent_steps=0, explore_after=0)
    counts = [100, 300, 480, 700, 900]
    rows = wide.from_configs([{"n": n} for n in counts])
    values = [((n - 500) / 400) ** 2 for n in counts]
    state = searcher.tell(searcher.init(jax.random.key(0)), rows, jnp.asarray(values, jnp.float32))
    row, _, _ = searcher.ask(state, jax.random.key(1), 1)
    assert wide.to_configs(row)[0]["n"] in (479, 481)
