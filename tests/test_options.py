import pytest

import jhpo
from jhpo.options import check_choice, check_options, closest

SPACE = {"x": jhpo.uniform(0.0, 1.0)}


def objective(config):
    return config["x"]


def test_a_misspelt_option_names_the_closest_accepted_one_and_lists_all():
    with pytest.raises(ValueError, match=r"no option 'num_init'; did you mean 'num_initial'\?") as error:
        check_options("searcher 'bo'", {"num_init": 3}, ["num_initial", "warp", "acquisition"])
    assert "['acquisition', 'num_initial', 'warp']" in str(error.value)
    check_options("x", {"warp": True}, ["warp"])  # accepted: no error


def test_a_name_far_from_every_choice_gets_no_suggestion():
    assert closest("zzzz", ["asha", "median"]) == ""
    with pytest.raises(ValueError, match=r"scheduler='zzzz' is not one of \['asha', 'median'\]$"):
        check_choice("scheduler", "zzzz", ["asha", "median"])


def test_tune_checks_searcher_and_scheduler_options_by_name():
    with pytest.raises(ValueError, match=r"searcher 'bo' has no option 'num_init'; did you mean 'num_initial'"):
        jhpo.tune(objective, SPACE, searcher="bo", searcher_options={"num_init": 3}, num_trials=1,
                  progress=False)
    with pytest.raises(ValueError, match=r"searcher 'random' has no option 'seed'"):
        jhpo.tune(objective, SPACE, searcher_options={"seed": 3}, num_trials=1, progress=False)

    def reporting(config, report):
        return config["x"]

    with pytest.raises(ValueError, match=r"scheduler 'asha' has no option 'max_ressource'; did you mean 'max_resource'"):
        jhpo.tune(reporting, SPACE, scheduler="asha", scheduler_options={"max_ressource": 9},
                  num_trials=1, progress=False)


def test_an_unknown_scheduler_is_named_before_the_objective_is_judged():
    # the objective takes no report; the misspelt name is the first thing to fix
    with pytest.raises(ValueError, match=r"scheduler='asha2' is not one of .*did you mean 'asha'"):
        jhpo.tune(objective, SPACE, scheduler="asha2", num_trials=1, progress=False)
    with pytest.raises(ValueError, match=r"searcher='bayes' is not one of"):
        jhpo.Optimizer(SPACE, "bayes")
