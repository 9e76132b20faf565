import math

import numpy as np
import pytest

import jhpo
from jhpo.runs.optimizer import Optimizer

SPACE = {"x": jhpo.uniform(-5.0, 5.0), "k": jhpo.randint(0, 3)}


def test_best_follows_the_told_values_in_the_optimizer_mode():
    for mode, pick in (("min", min), ("max", max)):
        opt = Optimizer(SPACE, seed=1, mode=mode)
        assert opt.best is None
        told = []
        for _ in range(3):
            configs = opt.ask(3)
            values = [c["x"] ** 2 + c["k"] for c in configs]
            values[0] = math.nan  # a failed trial never becomes the best
            opt.tell(configs, values)
            told += [(c, v) for c, v in zip(configs, values) if not math.isnan(v)]
        config, value = pick(told, key=lambda cv: cv[1])
        assert opt.best.value == pytest.approx(value) and opt.best.config == config


def test_best_skips_infeasible_results_and_refuses_several_objectives():
    opt = Optimizer(SPACE, seed=2, num_constraints=1)
    configs = opt.ask(4)
    opt.tell(configs, [1.0, 0.5, 2.0, 3.0], constraints=[[1.0], [-1.0], [1.0], [0.0]])
    assert opt.best.value == 1.0 and opt.best.config == configs[0]
    with pytest.raises(ValueError, match="no single best"):
        Optimizer(SPACE, mode=["min", "max"]).best


def test_counters_are_read_only_and_count_rows():
    opt = Optimizer(SPACE, seed=0)
    configs = opt.ask(3)
    opt.tell(configs[:2], [1.0, 2.0])
    assert (opt.num_asked, opt.num_told) == (3, 2)
    with pytest.raises(AttributeError):
        opt.num_asked = 0


def test_replay_needs_a_fresh_optimizer():
    opt = Optimizer(SPACE, seed=0)
    opt.ask(1)
    with pytest.raises(ValueError, match="fresh optimizer"):
        opt.replay([], [])


def test_goal_and_mode_together_are_refused():
    from jhpo.goal import Goal

    with pytest.raises(ValueError, match="either goal= or mode="):
        Optimizer(SPACE, goal=Goal.from_arguments(), mode="max")
    with pytest.raises(ValueError, match="seed=.*64 bits"):
        Optimizer(SPACE, seed=2**70)
    assert np.isfinite(Optimizer(SPACE, seed=-3).ask_rows(1)[0]).all()
