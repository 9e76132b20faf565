import json
import math
import os
import textwrap
import time
import warnings

import numpy as np
import pytest

import jhpo
from jhpo.runs.directory import load_run
from tests.killing import kill_after_records

SPACE = {"x": jhpo.uniform(-5.0, 5.0), "y": jhpo.uniform(-5.0, 5.0), "k": jhpo.randint(0, 3),
         "act": jhpo.choice(["relu", "tanh"])}


def bowl(config):
    return (config["x"] - 1.0) ** 2 + (config["y"] + 2.0) ** 2 + config["k"]


def test_tune_returns_the_best_trial_and_records_every_trial(tmp_path):
    result = jhpo.tune(bowl, SPACE, num_trials=25, seed=0, run_dir=tmp_path, progress=False)
    assert len(result.trials) == 25 and [t.trial_id for t in result.trials] == list(range(25))
    values = [t.value for t in result.trials]
    assert result.best.value == min(values)
    assert result.best.value == pytest.approx(bowl(result.best.config))
    lines = (tmp_path / "trials.jsonl").read_text().splitlines()
    assert len(lines) == 25
    record = json.loads(lines[3])
    assert set(record) >= {"trial_id", "config", "metrics", "status", "error", "start_time",
                           "end_time", "seed"}
    assert record["end_time"] >= record["start_time"]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["searcher"] == "random" and meta["mode"] == "min" and meta["seed"] == 0
    assert meta["space"]["x"] == {"type": "uniform", "lo": -5.0, "hi": 5.0}
    assert "jax" in meta["versions"]


def test_failed_and_nan_trials_are_recorded_and_the_run_completes(tmp_path):
    def flaky(config):
        if config["x"] > 2.0:
            raise RuntimeError("diverged at step 3")
        if config["x"] < -2.0:
            return float("nan")
        return bowl(config)

    result = jhpo.tune(flaky, SPACE, num_trials=30, seed=1, run_dir=tmp_path, progress=False)
    assert len(result.trials) == 30
    raised = [t for t in result.trials if t.config["x"] > 2.0]
    nans = [t for t in result.trials if t.config["x"] < -2.0]
    assert raised and nans
    assert all(t.status == "failed" and "diverged at step 3" in t.error for t in raised)
    assert all(t.status == "failed" and "non-finite" in t.error and t.value is None for t in nans)
    assert -2.0 <= result.best.config["x"] <= 2.0
    assert len(load_run(tmp_path).failed) == len(raised) + len(nans)


def test_dict_metrics_and_maximisation():
    def objective(config):
        return {"accuracy": -bowl(config), "loss": bowl(config)}

    result = jhpo.tune(objective, SPACE, metric="accuracy", mode="max", num_trials=20, progress=False)
    assert result.best.value == max(t.value for t in result.trials)
    assert result.best.metrics["loss"] == pytest.approx(-result.best.value)


def test_the_same_seed_reproduces_the_sequence_and_another_seed_does_not():
    for searcher in ("random", "quasirandom"):
        runs = [jhpo.tune(bowl, SPACE, searcher=searcher, num_trials=8, seed=s, progress=False)
                for s in (4, 4, 5)]
        configs = [[t.config for t in r.trials] for r in runs]
        assert configs[0] == configs[1]
        assert configs[0] != configs[2]


def test_wallclock_budget_stops_the_run():
    def slow(config):
        time.sleep(0.05)
        return bowl(config)

    result = jhpo.tune(slow, SPACE, max_wallclock_s=0.5, progress=False)
    assert 2 <= len(result.trials) <= 12


@pytest.mark.parametrize("kwargs,pattern", [
    ({}, "budget"),
    ({"num_trials": 0}, "num_trials=0"),
    ({"num_trials": 3, "mode": "minimise"}, "mode='minimise'"),
    ({"num_trials": 3, "searcher": "grid"}, "searcher='grid'"),
    ({"num_trials": 3, "max_wallclock_s": -1}, "max_wallclock_s"),
])
def test_bad_arguments_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        jhpo.tune(bowl, SPACE, progress=False, **kwargs)


@pytest.mark.parametrize("searcher", ["quasirandom", "random"])
def test_optimizer_ask_tell_one_at_a_time_matches_tune(searcher):
    optimizer = jhpo.Optimizer(SPACE, searcher=searcher, seed=2)
    seen = []
    for _ in range(8):
        [config] = optimizer.ask(1)
        optimizer.tell([config], [bowl(config)])
        seen.append(config)
    assert optimizer.state.observed.count == 8 and optimizer.state.pending.count == 0
    tuned = jhpo.tune(bowl, SPACE, searcher=searcher, num_trials=8, seed=2, progress=False)
    assert seen == [t.config for t in tuned.trials]
    assert optimizer.best.value == tuned.best.value and optimizer.best.config == tuned.best.config
    with pytest.raises(ValueError, match="2 configs but 1 values"):
        optimizer.tell(optimizer.ask(2), [1.0])


def test_resume_with_other_settings_is_refused(tmp_path):
    jhpo.tune(bowl, SPACE, num_trials=2, run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different 'seed'"):
        jhpo.tune(bowl, SPACE, num_trials=4, seed=9, run_dir=tmp_path, progress=False)


def test_truncated_last_record_is_tolerated_reported_and_repaired(tmp_path):
    jhpo.tune(bowl, SPACE, num_trials=3, run_dir=tmp_path, progress=False)
    path = tmp_path / "trials.jsonl"
    with open(path, "a") as f:
        f.write('{"trial_id": 3, "config": {"x"')
    with pytest.warns(UserWarning, match="truncated last record"):
        result = jhpo.tune(bowl, SPACE, num_trials=5, run_dir=tmp_path, progress=False)
    assert [t.trial_id for t in result.trials] == [0, 1, 2, 3, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [t.trial_id for t in load_run(tmp_path).trials] == [0, 1, 2, 3, 4]


KILLED_RUN = textwrap.dedent("""
    import sys, time
    import jhpo
    from tests.runs.test_blackbox import SPACE, bowl

    def slow_bowl(config):
        time.sleep(0.15)
        return bowl(config)

    jhpo.tune(slow_bowl, SPACE, searcher=sys.argv[2], num_trials=12, seed=3, run_dir=sys.argv[1],
              progress=False)
""")


@pytest.mark.parametrize("searcher", ["random", "quasirandom"])
def test_run_killed_with_sigkill_resumes_to_exactly_num_trials(tmp_path, searcher):
    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    trials_file = killed_dir / "trials.jsonl"
    before = kill_after_records(KILLED_RUN, [str(killed_dir), searcher], trials_file, 4, 120)
    k = len(before)
    assert 4 <= k < 12

    resumed = jhpo.tune(bowl, SPACE, searcher=searcher, num_trials=12, seed=3, run_dir=killed_dir,
                        progress=False)
    after = trials_file.read_text().splitlines()
    assert after[:k] == before[:k]
    ids = [json.loads(line)["trial_id"] for line in after]
    assert sorted(ids) == list(range(12)) == [t.trial_id for t in resumed.trials]

    reference = jhpo.tune(bowl, SPACE, searcher=searcher, num_trials=12, seed=3,
                          run_dir=reference_dir, progress=False)
    assert [t.config for t in resumed.trials] == [t.config for t in reference.trials]


def test_anytime_is_the_running_best_over_elapsed_time():
    result = jhpo.tune(bowl, SPACE, num_trials=15, seed=0, progress=False)
    elapsed, best = result.anytime()
    assert len(elapsed) == 15 and np.all(np.diff(elapsed) >= 0)
    assert np.all(np.diff(best) <= 0)
    assert best[-1] == result.best.value
    assert math.isclose(best[0], result.trials[0].value)


def recording_random_searcher(space, told):
    """The random searcher, keeping every block of values it is told in ``told``."""
    from jhpo.searchers import make

    inner = make("random", jhpo.Space(space), num_constraints=1)

    def tell(state, rows, values):
        told.append(np.asarray(values))
        return inner.tell(state, rows, values)

    return jhpo.searchers.Searcher(inner.init, inner.ask, tell)


def test_resume_tells_the_searcher_the_recorded_constraint_values(tmp_path):
    def objective(config):
        return {"loss": bowl(config), "margin": config["x"]}

    told = []
    first = jhpo.tune(objective, SPACE, searcher=recording_random_searcher(SPACE, told), metric="loss",
                      constraints=["margin"], num_trials=4, run_dir=tmp_path, progress=False)
    told.clear()
    jhpo.tune(objective, SPACE, searcher=recording_random_searcher(SPACE, told), metric="loss",
              constraints=["margin"], num_trials=5, run_dir=tmp_path, progress=False)
    replayed = np.concatenate(told)[:4]  # the four recorded trials, replayed in their order
    np.testing.assert_allclose(replayed[:, 1], [t.metrics["margin"] for t in first.trials], rtol=1e-6)
    np.testing.assert_allclose(replayed[:, 0], [t.value for t in first.trials], rtol=1e-6)


def test_a_second_writer_of_a_run_directory_is_refused_naming_the_holder(tmp_path):
    from jhpo.lock import RunDirectoryLocked, RunLock

    calls = []
    with RunLock(tmp_path):
        with pytest.raises(RunDirectoryLocked, match=f"in use by process {os.getpid()} on host"):
            jhpo.tune(lambda c: calls.append(c) or 0.0, SPACE, num_trials=2, run_dir=tmp_path,
                      progress=False)
    assert calls == [] and not (tmp_path / "trials.jsonl").exists()
    assert len(jhpo.tune(bowl, SPACE, num_trials=2, run_dir=tmp_path, progress=False).trials) == 2


def test_a_run_dir_that_cannot_be_written_fails_before_any_trial(tmp_path):
    (tmp_path / "file").write_text("")
    calls = []
    with pytest.raises(NotADirectoryError, match="cannot be written"):
        jhpo.tune(lambda c: calls.append(c) or 0.0, SPACE, num_trials=2,
                  run_dir=tmp_path / "file" / "run", progress=False)
    assert calls == []


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_an_objective_returning_a_non_finite_value_is_a_failed_trial(bad):
    result = jhpo.tune(lambda c: bad if c["k"] == 0 else 1.0, SPACE, num_trials=12, seed=0,
                       progress=False)
    bad_trials = [t for t in result.trials if t.config["k"] == 0]
    assert bad_trials and all(t.status == "failed" and "non-finite" in t.error for t in bad_trials)
    assert all(t.status == "completed" for t in result.trials if t.config["k"] != 0)
    assert result.best.value == 1.0


def test_the_first_trials_failing_alike_stop_the_run_with_their_error(tmp_path):
    def objective(config):
        return {"loss": bowl(config)}

    with pytest.raises(RuntimeError, match=r"first 3 trials all failed with: ValueError: metric 'los'"):
        jhpo.tune(objective, SPACE, metric="los", num_trials=20, run_dir=tmp_path, progress=False)
    assert len((tmp_path / "trials.jsonl").read_text().splitlines()) == 3
    result = jhpo.tune(objective, SPACE, metric="los", num_trials=5, progress=False, fail_fast=False)
    assert len(result.failed) == 5


def test_a_run_with_failures_ends_with_one_line_counting_them_by_error(caplog):
    def objective(config):
        if config["k"] == 1:
            raise KeyError("oops")
        if config["k"] == 2:
            raise ValueError("bad")
        return bowl(config)

    with caplog.at_level("WARNING", logger="jhpo"):
        result = jhpo.tune(objective, SPACE, num_trials=16, seed=1, progress=False)
    counts = dict((error, n) for n, error in result.failure_counts())
    assert counts == {"KeyError: 'oops'": sum(t.config["k"] == 1 for t in result.trials),
                      "ValueError: bad": sum(t.config["k"] == 2 for t in result.trials)}
    [line] = [r.getMessage() for r in caplog.records if "trials failed" in r.getMessage()]
    assert line.startswith(f"{len(result.failed)} of 16 trials failed")


def test_a_value_beyond_float32_is_a_failed_trial_that_says_why():
    result = jhpo.tune(lambda c: 1e300 if c["k"] == 0 else 1e30, SPACE, num_trials=10, seed=0,
                       progress=False)
    huge = [t for t in result.trials if t.config["k"] == 0]
    assert huge and all(t.status == "failed" and "beyond what searchers hold" in t.error
                        for t in huge)
    assert result.best.value == 1e30  # large but representable: a real result


def test_ctrl_c_returns_the_recorded_trials_and_the_run_resumes(tmp_path, caplog):
    calls = []

    def objective(config):
        calls.append(config)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return bowl(config)

    with caplog.at_level("WARNING", logger="jhpo"):
        partial = jhpo.tune(objective, SPACE, num_trials=6, seed=1, run_dir=tmp_path, progress=False)
    assert partial.interrupted and len(partial.trials) == 2
    assert any(r.getMessage().startswith("interrupted: 2 trials recorded") for r in caplog.records)
    resumed = jhpo.tune(bowl, SPACE, num_trials=6, seed=1, run_dir=tmp_path, progress=False)
    whole = jhpo.tune(bowl, SPACE, num_trials=6, seed=1, progress=False)
    assert not resumed.interrupted
    assert [t.config for t in resumed.trials] == [t.config for t in whole.trials]


def test_initial_configs_run_first_and_a_resume_does_not_run_them_again(tmp_path):
    given = [{"x": 1.0, "y": -2.0, "k": 0, "act": "relu"}, {"x": -4.0, "y": 4.0, "k": 3, "act": "tanh"}]
    first = jhpo.tune(bowl, SPACE, searcher="quasirandom", num_trials=1, seed=2, run_dir=tmp_path,
                      initial_configs=given, progress=False)
    resumed = jhpo.tune(bowl, SPACE, searcher="quasirandom", num_trials=5, seed=2,
                        run_dir=tmp_path, initial_configs=given, progress=False)
    whole = jhpo.tune(bowl, SPACE, searcher="quasirandom", num_trials=5, seed=2,
                      initial_configs=given, progress=False)
    assert first.trials[0].config == given[0]
    assert [t.config for t in resumed.trials] == [t.config for t in whole.trials]
    assert [t.config for t in whole.trials[:2]] == given and whole.best.value == 0.0
    # the searcher was asked nothing for the given trials: random search's draws follow on
    given_first = jhpo.tune(bowl, SPACE, num_trials=5, seed=2, initial_configs=given,
                            progress=False)
    plain = jhpo.tune(bowl, SPACE, num_trials=3, seed=2, progress=False)
    assert [t.config for t in given_first.trials[2:]] == [t.config for t in plain.trials]
    with pytest.raises(ValueError, match=r"initial_configs\[1\] is not a configuration"):
        jhpo.tune(bowl, SPACE, num_trials=2, initial_configs=[given[0], {"x": 9.0}], progress=False)
