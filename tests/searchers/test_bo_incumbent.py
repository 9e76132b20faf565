"""LogEI's incumbent in the ``bo`` proposal kernel: the lowest posterior mean at the observed
rows (the default) or the lowest observation, checked against a grid search of LogEI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo import acquisition as acq
from jhpo import gp
from jhpo.searchers.base import append, empty_buffer
from jhpo.searchers.bo import Outputs, kernels, make_config
from jhpo.space import Space

SPACE = Space({"x": jhpo.uniform(0.0, 1.0)})
# Rows packed around the minimum (0.3) of a bowl, and one far off, with a wiggle of
# alternating sign on top; the GP below reads the wiggle as noise, so its mean at the rows
# lies well above the lowest value. Measured against that value LogEI explores the gap
# beyond 0.5; against the lowest mean it stays near the bowl's minimum.
X = np.append(np.linspace(0.0, 0.5, 12), 1.0)
Y = 4.0 * (X - 0.3) ** 2 + 0.5 * (-1.0) ** np.arange(13)
PARAMS = gp.GPParams(log_lengthscale=jnp.log(jnp.array([0.3])), log_amplitude=jnp.array(0.0),
                     log_noise=jnp.array(0.0), mean=jnp.array(0.0))


def grid_argmax_of_logei(incumbent):
    """Where LogEI peaks on a fine grid, with the incumbent taken as ``incumbent`` says."""
    with jax.enable_x64(True):
        x = jnp.asarray(X)[:, None]
        mask = jnp.ones(len(X), bool)
        y, _, _ = gp.standardize(jnp.asarray(Y), mask)
        params = jax.tree.map(lambda p: p.astype(jnp.float64), PARAMS)
        post = gp.posterior(params, x, y, mask)
        best = gp.predict(post, x)[0].min() if incumbent == "mean" else y.min()
        grid = jnp.linspace(0.0, 1.0, 4001)[:, None]
        mean, variance = gp.predict(post, grid)
        values = acq.log_expected_improvement(mean, variance, best)
        return float(grid[jnp.argmax(values), 0])


def proposal(incumbent):
    # Over the whole cube: the grid search knows nothing of a trust region's box.
    config = make_config(SPACE, incumbent=incumbent, trust_region=False).propose
    observed = append(empty_buffer(1), jnp.asarray(X[:, None], jnp.float32),
                      jnp.asarray(Y, jnp.float32))
    params = jax.tree.map(lambda p: p[None], PARAMS)  # one modelled output
    with jax.enable_x64(True):
        row, found = kernels.propose_kernel(SPACE, config, Outputs(), params, observed,
                                            empty_buffer(1), None, jax.random.key(0))
    assert bool(found)
    return float(row[0])


def test_the_two_incumbents_peak_apart():
    # Otherwise the test below could not tell them apart.
    assert abs(grid_argmax_of_logei("mean") - grid_argmax_of_logei("observed")) > 0.15


@pytest.mark.parametrize("incumbent", ["mean", "observed"])
def test_the_proposal_maximises_logei_with_its_incumbent(incumbent):
    assert proposal(incumbent) == pytest.approx(grid_argmax_of_logei(incumbent), abs=0.01)


def test_an_unknown_incumbent_is_named():
    with pytest.raises(ValueError, match="incumbent"):
        make_config(SPACE, incumbent="best")
