"""The trend row of ``bo``'s trust region (``jhpo.searchers.bo.trend``): the separable
quadratic against numpy's least squares, its minimiser against a brute-force search, and
the searcher proposing it exactly when the fit is good enough, once a period of rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo.searchers import make
from jhpo.searchers.bo import make_config
from jhpo.searchers.bo.trend import fit_separable_quadratic, trend_minimiser
from jhpo.searchers.bo.trust import region_box
from jhpo.space import Space


def fit64(x, y, weights, columns):
    with jax.enable_x64(True):
        return fit_separable_quadratic(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64),
                                       jnp.asarray(weights, jnp.float64),
                                       jnp.asarray(columns, bool))


def numpy_fit(x, y, columns):
    """Coefficients (intercept, linear, curvature on ``columns``) and adjusted R^2 by
    ``np.linalg.lstsq`` on the rows given."""
    kept = x[:, columns]
    features = np.hstack([np.ones((len(y), 1)), kept, kept**2])
    coef = np.linalg.lstsq(features, y, rcond=None)[0]
    residual = ((features @ coef - y) ** 2).sum()
    r2 = 1 - residual / ((y - y.mean()) ** 2).sum()
    n, p = len(y), features.shape[1]
    return coef, 1 - (1 - r2) * (n - 1) / (n - p)


@pytest.mark.parametrize("seed", range(3))
def test_the_fit_is_least_squares_on_the_rows_and_columns_kept(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((30, 4))
    y = rng.normal(size=30) + 3 * (x[:, 0] - 0.3) ** 2
    weights = (rng.random(30) < 0.7).astype(float)
    columns = np.array([True, True, False, True])
    fit = fit64(x, np.where(weights > 0, y, 1e9), weights, columns)
    kept = weights > 0
    coef, adjusted = numpy_fit(x[kept], y[kept], columns)
    k = columns.sum()
    # The ridge that keeps constant columns solvable moves the coefficients by ~1e-7.
    assert float(fit.intercept) == pytest.approx(coef[0], rel=1e-5)
    np.testing.assert_allclose(np.asarray(fit.linear)[columns], coef[1:1 + k], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fit.curvature)[columns], coef[1 + k:], rtol=1e-5)
    assert np.all(np.asarray(fit.linear)[~columns] == 0)
    assert np.all(np.asarray(fit.curvature)[~columns] == 0)
    assert float(fit.adjusted_r2) == pytest.approx(adjusted, abs=1e-8)
    assert int(fit.count) == kept.sum()


def test_too_few_rows_for_the_terms_never_count_as_a_good_fit():
    rng = np.random.default_rng(0)
    x = rng.random((10, 2))  # 5 terms for 2 columns: 10 rows are needed
    y = ((x - 0.5) ** 2).sum(1)  # an exact bowl
    weights = np.ones(10)
    assert float(fit64(x, y, weights, [True, True]).adjusted_r2) == pytest.approx(1.0)
    weights[3] = 0.0
    assert float(fit64(x, y, weights, [True, True]).adjusted_r2) == -np.inf


def test_the_minimiser_of_a_bowl_is_its_centre_and_is_clipped():
    rng = np.random.default_rng(1)
    centre = np.array([0.3, 0.7, 0.55])
    x = rng.random((20, 3))
    y = ((x - centre) ** 2 * np.array([1.0, 4.0, 0.5])).sum(1) + 2.0
    fit = fit64(x, y, np.ones(20), [True] * 3)
    assert float(fit.adjusted_r2) == pytest.approx(1.0, abs=1e-9)
    with jax.enable_x64(True):
        found = trend_minimiser(fit, jnp.zeros(3), 0.0, 1.0)
        clipped = trend_minimiser(fit, jnp.zeros(3), jnp.asarray([0.0, 0.0, 0.6]), 1.0)
    # Brute force on a grid along each column (the quadratic is separable).
    grid = np.linspace(0, 1, 10001)
    brute = [grid[np.argmin(np.asarray(fit.linear)[j] * grid
                            + np.asarray(fit.curvature)[j] * grid**2)] for j in range(3)]
    np.testing.assert_allclose(np.asarray(found), brute, atol=1e-4)
    np.testing.assert_allclose(np.asarray(found), centre, atol=1e-6)
    assert float(clipped[2]) == pytest.approx(0.6)


def test_a_column_without_a_minimum_keeps_the_fallback():
    rng = np.random.default_rng(2)
    x = rng.random((20, 2))
    y = (x[:, 0] - 0.4) ** 2 - (x[:, 1] - 0.5) ** 2  # a saddle: no minimum along column 1
    fit = fit64(x, y, np.ones(20), [True, True])
    with jax.enable_x64(True):
        row = trend_minimiser(fit, jnp.asarray([0.9, 0.25]), 0.0, 1.0)
    np.testing.assert_allclose(np.asarray(row), [0.4, 0.25], atol=1e-6)


SPACE = Space({"a": jhpo.uniform(0.0, 1.0), "b": jhpo.uniform(-2.0, 2.0),
               "c": jhpo.uniform(10.0, 20.0)})
OPTIONS = {"num_initial": 3, "num_screen": 256, "num_starts": 4, "ascent_steps": 15,
           "fit_evaluations": 15, "num_restarts": 4, "trust_region": True}
CENTRE = np.array([0.35, 0.6, 0.45])


def told(values_of, num):
    searcher = make("bo", SPACE, **OPTIONS)
    rows = SPACE.canonicalize(jax.random.uniform(jax.random.key(5), (num, SPACE.dim)))
    values = values_of(np.asarray(rows, np.float64)).astype(np.float32)
    return searcher, searcher.tell(searcher.init(jax.random.key(0)), rows, jnp.asarray(values))


def bowl(rows):
    # A separable bowl with ripples of 1e-4 of its depth: the quadratic explains nearly all.
    return (((rows - CENTRE) ** 2).sum(1) + 1e-4 * np.cos(97 * rows).sum(1))


def region_of(state):
    """The trust region's box for the told history and the state's fit."""
    config = make_config(SPACE, **OPTIONS).propose.trust_region
    y = state.observed.y.reshape(state.observed.capacity, -1)[:, 0]
    with jax.enable_x64(True):
        return region_box(config, state.observed.x.astype(jnp.float64), y.astype(jnp.float64),
                          state.observed.mask,
                          state.params.log_lengthscale[0].astype(jnp.float64),
                          jnp.ones(SPACE.dim, bool))


def expected_trend_row(state):
    """The quadratic's minimiser by numpy from the told values, clipped to the region's
    box (of ``state``'s fit), as a canonical row."""
    x = np.asarray(state.observed.x, np.float64)[np.asarray(state.observed.mask)]
    y = np.asarray(state.observed.y, np.float64).reshape(len(state.observed.mask), -1)[:, 0]
    y = y[np.asarray(state.observed.mask)]
    coef, _ = numpy_fit(x, y, np.ones(3, bool))
    box = region_of(state)
    vertex = np.clip(-coef[1:4] / (2 * coef[4:]), np.asarray(box.low), np.asarray(box.high))
    return np.asarray(SPACE.canonicalize(jnp.asarray(vertex[None], jnp.float32))[0])


PERIOD = make_config(SPACE, **OPTIONS).propose.trust_region.trend_period
# The first index from 14 (two rows for each of the 7 terms) on which the row is considered.
FIRST = -(-14 // PERIOD) * PERIOD


def test_a_bowl_gets_the_trend_row_once_a_period():
    searcher, state = told(bowl, FIRST)
    rows, after, fresh = searcher.ask(state, jax.random.key(1), PERIOD + 1)
    # ``after`` holds the fit the proposals used (pending rows do not move the box).
    np.testing.assert_allclose(np.asarray(rows[0]), expected_trend_row(after), atol=1e-6)
    # The rows between are the acquisition's, elsewhere; the last one's index is the next
    # multiple of the period, but the trend row is pending now, so it is the
    # acquisition's too.
    for row in rows[1:]:
        assert np.abs(np.asarray(row) - np.asarray(rows[0])).max() > 1e-6
    assert bool(np.all(np.asarray(fresh)))


def test_a_row_between_periods_follows_the_acquisition():
    searcher, state = told(bowl, FIRST + 1)
    row, after, _ = searcher.ask(state, jax.random.key(1), 1)
    assert np.abs(np.asarray(row[0]) - expected_trend_row(after)).max() > 1e-6


def test_a_landscape_the_quadratic_misses_never_gets_the_trend_row():
    def rugged(rows):
        return np.sin(9 * rows).sum(1)

    searcher, state = told(rugged, FIRST)
    row, after, _ = searcher.ask(state, jax.random.key(1), 1)
    assert np.abs(np.asarray(row[0]) - expected_trend_row(after)).max() > 1e-6
