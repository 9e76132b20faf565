import json

import pytest

import jhpo
from jhpo.experiment import Method, as_seeds, run_directory, run_experiment, unfinished_runs
from tests.runs import objectives

SPACE = {"x": jhpo.uniform(-2.0, 2.0), "y": jhpo.uniform(-2.0, 2.0)}


class CountingBowl:
    """A bowl with minimum 0 that counts its calls and can be told to crash."""

    name = "bowl"
    optimum = 0.0

    def __init__(self, crash_at=None):
        self.calls = 0
        self.crash_at = crash_at

    def __call__(self, config):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt  # a user's Ctrl-C: not a failed trial, it ends the run
        return config["x"] ** 2 + config["y"] ** 2


def test_every_method_and_seed_runs_into_its_own_directory(tmp_path):
    methods = ["random", Method("halton", searcher="quasirandom")]
    record = run_experiment(CountingBowl(), SPACE, methods, [3, 5], tmp_path, num_trials=4,
                            progress=False)
    assert record.methods == ["random", "halton"] and record.optimum == 0.0
    for method, searcher in (("random", "random"), ("halton", "quasirandom")):
        assert sorted(record.runs[method]) == [3, 5]
        for seed in (3, 5):
            run_dir = run_directory(tmp_path, method, seed)
            assert run_dir == tmp_path / method / f"seed_{seed}"
            meta = json.loads((run_dir / "meta.json").read_text())
            assert (meta["searcher"], meta["seed"]) == (searcher, seed)
            # each run is exactly the run jhpo.tune makes with that searcher and seed
            alone = jhpo.tune(CountingBowl(), SPACE, searcher=searcher, seed=seed, num_trials=4,
                              progress=False)
            assert [t.config for t in record.runs[method][seed].trials] == \
                [t.config for t in alone.trials]
    description = json.loads((tmp_path / "experiment.json").read_text())
    assert description["seeds"] == [3, 5]
    assert description["settings"] == {"mode": "min", "num_trials": 4}
    assert description["target"] == "CountingBowl:bowl" and description["optimum"] == 0.0
    assert description["tuner"] == "jhpo.tune" and "jax" in description["versions"]
    assert description["space"]["x"] == {"type": "uniform", "lo": -2.0, "hi": 2.0}
    assert description["methods"][1] == {"name": "halton", "searcher": "quasirandom",
                                         "searcher_options": {}, "scheduler": None,
                                         "scheduler_options": {}, "options": {}}
    assert set(description["finished"]) == {"random/seed_3", "random/seed_5", "halton/seed_3",
                                            "halton/seed_5"}
    assert description["finished"]["halton/seed_5"]["num_trials"] == 4


def test_a_finished_experiment_is_not_run_again_and_can_grow(tmp_path):
    run_experiment(CountingBowl(), SPACE, ["random"], 2, tmp_path, num_trials=3, progress=False)
    again = CountingBowl()
    record = run_experiment(again, SPACE, ["random"], 2, tmp_path, num_trials=3, progress=False)
    assert again.calls == 0 and sorted(record.runs["random"]) == [0, 1]
    grown = CountingBowl()
    record = run_experiment(grown, SPACE, ["random", "quasirandom"], [0, 1, 2], tmp_path,
                            num_trials=3, progress=False)
    # four new runs (quasirandom x 3 seeds, random x seed 2) of three trials each
    assert grown.calls == 12
    assert {m: sorted(s) for m, s in record.runs.items()} == {"random": [0, 1, 2],
                                                             "quasirandom": [0, 1, 2]}


def test_an_interrupted_experiment_resumes_where_it_stopped(tmp_path):
    crashing = CountingBowl(crash_at=7)  # the 2nd trial of the 2nd run (random, seed 1)
    # Ctrl-C inside a run stops that run cleanly, and the grid with it
    run_experiment(crashing, SPACE, ["random", "quasirandom"], 2, tmp_path, num_trials=5,
                   progress=False)
    description = json.loads((tmp_path / "experiment.json").read_text())
    assert set(description["finished"]) == {"random/seed_0"}
    # runs are interleaved: both methods for seed 0 come before seed 1
    assert not (tmp_path / "random" / "seed_1").exists()
    partial = jhpo.load_run(tmp_path / "quasirandom" / "seed_0")
    assert len(partial.trials) == 1
    resumed = CountingBowl()
    record = run_experiment(resumed, SPACE, ["random", "quasirandom"], 2, tmp_path,
                            num_trials=5, progress=False)
    assert resumed.calls == 4 + 5 + 5  # the rest of quasirandom/seed_0, then two fresh runs
    for seeds in record.runs.values():
        for result in seeds.values():
            assert [t.trial_id for t in result.trials] == [0, 1, 2, 3, 4]
    uninterrupted = jhpo.tune(CountingBowl(), SPACE, searcher="quasirandom", seed=0, num_trials=5,
                              progress=False)
    assert [t.config for t in record.runs["quasirandom"][0].trials] == \
        [t.config for t in uninterrupted.trials]


def test_resuming_with_other_settings_or_a_changed_method_is_refused(tmp_path):
    run_experiment(CountingBowl(), SPACE, ["random"], 1, tmp_path, num_trials=2, progress=False)
    with pytest.raises(ValueError, match="different 'settings'"):
        run_experiment(CountingBowl(), SPACE, ["random"], 1, tmp_path, num_trials=3,
                       progress=False)
    with pytest.raises(ValueError, match="different 'space'"):
        run_experiment(CountingBowl(), {"x": jhpo.uniform(0.0, 1.0)}, ["random"], 1, tmp_path,
                       num_trials=2, progress=False)
    with pytest.raises(ValueError, match="already has a method named 'random'"):
        run_experiment(CountingBowl(), SPACE, [Method("random", searcher="quasirandom")], 1,
                       tmp_path, num_trials=2, progress=False)


def test_workers_go_to_every_run_and_only_their_placement_may_change_on_resume(tmp_path):
    record = run_experiment(objectives.uneven_bowl, SPACE, ["random", "quasirandom"], 1,
                            tmp_path, num_trials=4, workers=2, progress=False,
                            worker_env=lambda i: {"JHPO_TEST_SLOT": str(i)})
    for method in ("random", "quasirandom"):
        run_dir = run_directory(tmp_path, method, 0)
        assert json.loads((run_dir / "meta.json").read_text())["parallel"]["workers"] == 2
        asks = [json.loads(line) for line in (run_dir / "asks.jsonl").read_text().splitlines()]
        assert asks[1]["pending"] == [0]  # the second trial was asked while the first ran
        assert len(record.runs[method][0].trials) == 4
    description = json.loads((tmp_path / "experiment.json").read_text())
    assert description["settings"] == {"mode": "min", "num_trials": 4, "workers": 2}
    grown = run_experiment(objectives.uneven_bowl, SPACE, ["random", "quasirandom"], 2, tmp_path,
                           num_trials=4, workers=2, progress=False,
                           worker_env=lambda i: {"JHPO_TEST_SLOT": str(10 + i)})
    assert sorted(grown.runs["random"]) == [0, 1]
    with pytest.raises(ValueError, match="different 'settings'"):
        run_experiment(objectives.uneven_bowl, SPACE, ["random"], 3, tmp_path, num_trials=4,
                       workers=3, progress=False)


def test_a_custom_tuner_gets_the_method_settings_and_runs_in_interleaved_order(tmp_path):
    calls = []

    def population_like_tuner(target, space, *, searcher, seed, run_dir, progress, steps,
                              population_size, scheduler=None, scheduler_options=None):
        calls.append((searcher, seed, scheduler, scheduler_options, steps, population_size,
                      progress))
        # like a population task, it names the metric itself
        return jhpo.tune(lambda config: {"loss": target(config)}, space, searcher=searcher,
                         seed=seed, run_dir=run_dir, num_trials=2, metric="loss",
                         progress=progress)

    methods = [Method("asha", searcher="random", scheduler="asha",
                      scheduler_options={"eta": 3}, options={"population_size": 8}),
               Method("plain", searcher="quasirandom")]
    record = run_experiment(CountingBowl(), SPACE, methods, 2, tmp_path,
                            tuner=population_like_tuner, steps=10, population_size=4,
                            progress=False)
    assert record.metric == "loss"
    assert calls == [("random", 0, "asha", {"eta": 3}, 10, 8, False),
                     ("quasirandom", 0, None, None, 10, 4, False),
                     ("random", 1, "asha", {"eta": 3}, 10, 8, False),
                     ("quasirandom", 1, None, None, 10, 4, False)]
    description = json.loads((tmp_path / "experiment.json").read_text())
    assert description["tuner"].endswith("population_like_tuner")


@pytest.mark.parametrize("arguments,pattern", [
    ({"methods": []}, "at least one method"),
    ({"methods": ["random", "random"]}, "repeated: \\['random'\\]"),
    ({"methods": ["grid"]}, "searcher='grid'"),
    ({"methods": ["../up"]}, "name='../up'"),
    ({"seeds": 0}, "seeds=0"),
    ({"seeds": [1, 1]}, "must not repeat"),
    ({"seeds": [-1]}, "non-negative"),
    ({"tuner": "tune_everything"}, "tuner='tune_everything'"),
    ({"seed": 3}, "settings may not set \\['seed'\\]"),
])
def test_bad_experiments_are_named(tmp_path, arguments, pattern):
    arguments = {"methods": ["random"], "seeds": 1, "num_trials": 2, **arguments}
    with pytest.raises(ValueError, match=pattern):
        run_experiment(CountingBowl(), SPACE, directory=tmp_path, progress=False, **arguments)


def test_method_options_may_not_shadow_what_the_experiment_sets():
    with pytest.raises(ValueError, match="may not set \\['run_dir', 'seed'\\]"):
        Method("m", options={"seed": 1, "run_dir": "x"})
    assert Method("m").tuner_arguments() == {"searcher": "random"}
    assert as_seeds(3) == [0, 1, 2] and as_seeds([4, 2]) == [4, 2]


def test_unfinished_runs_lists_what_a_call_would_run(tmp_path):
    methods = ["random", "quasirandom"]
    assert [(m.name, s) for m, s in unfinished_runs(tmp_path, methods, 2)] == [
        ("random", 0), ("quasirandom", 0), ("random", 1), ("quasirandom", 1)]
    run_experiment(CountingBowl(), SPACE, ["random"], [0, 1], tmp_path, num_trials=2,
                   progress=False)
    assert [(m.name, s) for m, s in unfinished_runs(tmp_path, methods, 2)] == [
        ("quasirandom", 0), ("quasirandom", 1)]


def test_a_multiobjective_experiment_records_its_fronts(tmp_path):
    def two_costs(config):
        return {"a": config["x"] ** 2, "b": (config["x"] - 1) ** 2}

    run_experiment(two_costs, SPACE, ["random"], 1, tmp_path, num_trials=5, metric=["a", "b"],
                   mode=["min", "min"], progress=False)
    finished = json.loads((tmp_path / "experiment.json").read_text())["finished"]
    front = jhpo.load_run(tmp_path / "random" / "seed_0").pareto_front()
    assert finished["random/seed_0"]["pareto_front"] == len(front) >= 1
