"""A task that breaks its contract gets one message naming the function, not a trace
from inside a compiled population; string choices reach a task as indices."""

import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo import population as pop
from tests.population.toy_task import TASK

SPACE = {"learning_rate": jhpo.loguniform(1e-3, 1e-1), "batch_size": jhpo.randint(2, 8)}


def test_a_sound_task_passes_and_lists_its_metrics():
    assert "val_error" in pop.check_task(TASK)


def broken(**replacements):
    return TASK._replace(**replacements)


@pytest.mark.parametrize("task, message", [
    (broken(train_step=lambda s, hp, b, k: (s, {"los": jnp.float32(0)})),
     r"train_step's metrics need a scalar 'loss'"),
    (broken(train_step=lambda s, hp, b, k: (s, {"loss": jnp.zeros(3)})),
     r"train_step's metrics need a scalar 'loss'"),
    (broken(train_step=lambda s, hp, b, k: {"loss": jnp.float32(0)}),
     r"train_step must return \(state, metrics\)"),
    (broken(train_step=lambda s, hp, b, k: ({"w": jnp.zeros(7)}, {"loss": jnp.float32(0)})),
     r"train_step must return a state shaped as init's"),
    (broken(evaluate=lambda s, hp, d: {"val_error": jnp.zeros(2)}),
     r"evaluate must return a dict of scalars; got \{'val_error': \(2,\)\}"),
    (broken(evaluate=lambda s, hp, d: {"error": jnp.float32(0)}),
     r"evaluate's metrics \['error'\] lack the task's metric 'val_error'"),
    (broken(init=lambda key, hp: {"w": jnp.zeros(3) * hp["dropout"]}),
     r"init read .dropout., which is missing"),
    (broken(defaults={"learning_rate": 0.1}), r"defaults must give 'batch_size'"),
])
def test_a_broken_task_gets_one_message_naming_the_function(task, message):
    with pytest.raises(pop.TaskError, match=message) as error:
        pop.check_task(task)
    assert "\n" not in str(error.value) and "task 'regression'" in str(error.value)


def test_tune_population_checks_the_task_before_training():
    with pytest.raises(pop.TaskError, match="train_step"):
        jhpo.tune_population(broken(train_step=lambda s, hp, b, k: (s, {})), SPACE, num_trials=2,
                             population_size=2, steps=2, progress=False)


def test_string_choices_reach_a_task_as_their_index_and_numbers_as_themselves():
    space = jhpo.Space({"act": jhpo.choice(["relu", "gelu"]), "width": jhpo.choice([16, 32]),
                        "flag": jhpo.choice([False, True]), "opt": {"lr": jhpo.uniform(0.0, 1.0)}})
    config = {"act": "gelu", "width": 32, "flag": True, "opt": {"lr": 0.25}}
    assert pop.task_config(space, config) == {"act": 1, "width": 32, "flag": 1, "opt.lr": 0.25}


def test_a_population_tunes_a_string_choice():
    task = TASK._replace(defaults={**TASK.defaults, "act": 0})
    result = jhpo.tune_population(task, {**SPACE, "act": jhpo.choice(["relu", "tanh"])},
                                  num_trials=4, population_size=4, steps=2, seed=1, progress=False)
    seen = {t.config["act"] for t in result.trials}
    assert seen <= {"relu", "tanh"} and all(t.status == "completed" for t in result.trials)
    columns = pop.stack_hparams(task, [pop.task_config(jhpo.Space({**SPACE, "act": jhpo.choice(
        ["relu", "tanh"])}), t.config) for t in result.trials])
    np.testing.assert_array_equal(columns["act"], [["relu", "tanh"].index(t.config["act"])
                                                   for t in result.trials])
