"""Running a searcher by hand on a test problem, for tests that compare searchers."""

import math

import jax
import jax.numpy as jnp

from jhpo.searchers import make


def best_after(name: str, problem, seed: int, budget: int) -> float:
    """The best value searcher ``name`` finds on ``problem`` in ``budget`` evaluations,
    asked and told one row at a time."""
    searcher = make(name, problem.space)
    key = jax.random.key(seed)
    state = searcher.init(key)
    best = math.inf
    for i in range(budget):
        row, state, _ = searcher.ask(state, jax.random.fold_in(key, i), 1)
        with jax.enable_x64(True):
            value = problem(problem.space.to_configs(row)[0])
        best = min(best, value)
        state = searcher.tell(state, row, jnp.asarray([value], jnp.float32))
    return best
