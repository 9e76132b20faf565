import jax
import numpy as np

import jhpo
from jhpo.schedulers import pbt_explore
from jhpo.space import Space

SPACE = Space({"lr": jhpo.loguniform(1e-4, 1.0), "width": jhpo.randint(4, 64),
               "act": jhpo.choice(["relu", "tanh"]), "depth": jhpo.ordinal([1, 2, 4, 8])})


def test_explore_multiplies_numbers_by_a_factor_and_moves_ranks_by_one():
    rows = SPACE.from_configs([{"lr": 0.01, "width": 20, "act": "tanh", "depth": 2}] * 64)
    explored = SPACE.to_configs(pbt_explore(SPACE, rows, jax.random.key(0), resample_probability=0.0))
    lrs = {round(c["lr"] / 0.01, 4) for c in explored}
    assert lrs == {0.8, 1.2}
    assert {c["width"] for c in explored} == {16, 24}
    assert {c["act"] for c in explored} == {"tanh"}
    assert {c["depth"] for c in explored} == {1, 4}


def test_explore_stays_in_bounds_and_resamples_at_the_given_rate():
    rows = SPACE.from_configs([{"lr": 1.0, "width": 64, "act": "relu", "depth": 8}] * 400)
    explored = SPACE.to_configs(pbt_explore(SPACE, rows, jax.random.key(1), resample_probability=0.5))
    assert all(1e-4 <= c["lr"] <= 1.0 and 4 <= c["width"] <= 64 for c in explored)
    switched = np.mean([c["act"] == "tanh" for c in explored])
    # a resampled choice lands on the other value half of the time: 0.5 * 0.5
    assert 0.18 < switched < 0.32
