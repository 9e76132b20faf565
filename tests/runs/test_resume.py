"""Resuming a black-box run: the searcher's state and the trials left to run are those of
the run that was never interrupted, whatever the records went through."""

import json
import math
import os
import time
import warnings

import jax
import numpy as np
import pytest

import jhpo
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.directory import RunDirectory, load_run
from tests.killing import kill_after_records
from tests.runs.test_blackbox import SPACE, bowl

BO_OPTIONS = {"num_initial": 3, "num_screen": 128, "num_starts": 2, "ascent_steps": 5,
              "fit_evaluations": 5, "num_restarts": 2, "num_local": 16}


def two_objectives(config):
    return {"a": bowl(config), "b": (config["x"] + 1.0) ** 2 + config["k"]}


CASES = {
    "random": dict(objective=bowl, searcher="random"),
    "quasirandom": dict(objective=bowl, searcher="quasirandom"),
    "bo": dict(objective=bowl, searcher="bo", searcher_options=BO_OPTIONS),
    "bo_two_objectives": dict(objective=two_objectives, searcher="bo", metric=["a", "b"],
                              mode=["min", "min"], searcher_options=BO_OPTIONS),
    "tpe": dict(objective=bowl, searcher="tpe", searcher_options={"num_initial": 3}),
    "cmaes": dict(objective=bowl, searcher="cmaes", searcher_options={"population_size": 3}),
}


def run(case, num_trials, run_dir=None):
    arguments = dict(CASES[case])
    objective = arguments.pop("objective")
    return jhpo.tune(objective, SPACE, num_trials=num_trials, seed=5, run_dir=run_dir,
                     progress=False, **arguments)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_resumed_after_any_number_of_trials_proposes_what_the_uninterrupted_run_did(
        tmp_path, case):
    total = 7
    uninterrupted = [t.config for t in run(case, total).trials]
    for stop in range(1, total):
        run_dir = tmp_path / f"stopped_at_{stop}"
        run(case, stop, run_dir)
        resumed = run(case, total, run_dir)
        assert [t.config for t in resumed.trials] == uninterrupted, f"resumed after {stop}"


@pytest.mark.parametrize("case", ["bo", "bo_two_objectives", "quasirandom"])
def test_replaying_the_records_rebuilds_the_searcher_state_exactly(tmp_path, case):
    run(case, 5, tmp_path)
    arguments = dict(CASES[case])
    live = Optimizer(SPACE, arguments["searcher"], seed=5, mode=arguments.get("mode", "min"),
                     searcher_options=arguments.get("searcher_options"))
    objective = arguments["objective"]
    for _ in range(5):
        [config] = live.ask(1)
        outcome = objective(config)
        values = [outcome[m] for m in arguments["metric"]] if "metric" in arguments else outcome
        live.tell([config], [values])
    rebuilt = Optimizer(SPACE, arguments["searcher"], seed=5, mode=arguments.get("mode", "min"),
                        searcher_options=arguments.get("searcher_options"))
    directory = RunDirectory(tmp_path)
    assert rebuilt.replay(directory.read_asks(), directory.read_trials())
    for a, b in zip(jax.tree.leaves(live.state), jax.tree.leaves(rebuilt.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (rebuilt.num_asked, rebuilt.num_told) == (live.num_asked, live.num_told) == (5, 5)


def test_a_trial_asked_but_never_recorded_runs_again_under_its_id(tmp_path):
    whole = run("quasirandom", 6)
    run("quasirandom", 6, tmp_path)
    lines = (tmp_path / "trials.jsonl").read_text().splitlines(keepends=True)
    del lines[2]  # a gap: trial 2 was asked, never recorded
    (tmp_path / "trials.jsonl").write_text("".join(lines))
    # the later asks followed trial 2's tell, which the replay no longer has
    with pytest.warns(UserWarning, match="replaying the recorded asks proposed other"):
        resumed = run("quasirandom", 6, tmp_path)
    assert sorted(t.trial_id for t in resumed.trials) == list(range(6))
    by_id = {t.trial_id: t.config for t in resumed.trials}
    assert [by_id[i] for i in range(6)] == [t.config for t in whole.trials]


def test_a_repeated_identical_record_is_dropped_and_the_last_trial_still_runs(tmp_path):
    run("random", 4, tmp_path)
    lines = (tmp_path / "trials.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "trials.jsonl").write_text("".join(lines + [lines[1]]))
    with pytest.warns(UserWarning, match="trial 1 is recorded twice"):
        resumed = run("random", 5, tmp_path)
    assert [t.trial_id for t in resumed.trials] == [0, 1, 2, 3, 4]


def test_two_different_records_of_one_id_are_an_error_naming_it(tmp_path):
    run("random", 3, tmp_path)
    lines = (tmp_path / "trials.jsonl").read_text().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["value"] = 123.0
    (tmp_path / "trials.jsonl").write_text("".join(lines + [json.dumps(record) + "\n"]))
    with pytest.raises(ValueError, match="trial 1 has two different records"):
        run("random", 5, tmp_path)


def test_an_id_that_was_never_asked_is_refused_instead_of_skipping_ahead(tmp_path):
    run("random", 3, tmp_path)
    lines = (tmp_path / "trials.jsonl").read_text().splitlines(keepends=True)
    record = json.loads(lines[0])
    record["trial_id"] = 10**9
    (tmp_path / "trials.jsonl").write_text("".join(lines + [json.dumps(record) + "\n"]))
    with pytest.raises(ValueError, match=f"trial {10**9} was never asked"):
        run("random", 5, tmp_path)


def test_a_last_record_missing_its_newline_is_repaired_before_appending(tmp_path):
    run("random", 3, tmp_path)
    path = tmp_path / "trials.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    resumed = run("random", 5, tmp_path)
    assert [t.trial_id for t in resumed.trials] == list(range(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [t.trial_id for t in load_run(tmp_path).trials] == list(range(5))


def test_records_hold_non_finite_values_anywhere_and_read_them_back(tmp_path):
    # (a choice holding NaN is refused when built: a configuration holding it could not be
    # read back, since NaN equals no value; a constant may be anything)
    space = {"x": jhpo.uniform(0, 1), "k": float("inf"), "n": float("nan")}

    def objective(config):
        return {"loss": config["x"], "curve": [0.5, float("nan"), -float("inf")]}

    result = jhpo.tune(objective, space, metric="loss", num_trials=6, seed=1, run_dir=tmp_path,
                       progress=False)
    assert all(t.status == "completed" for t in result.trials)
    for line in (tmp_path / "trials.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda token: pytest.fail(f"non-standard JSON {token}"))
    loaded = load_run(tmp_path).trials
    curve = loaded[0].metrics["curve"]
    assert curve[0] == 0.5 and math.isnan(curve[1]) and curve[2] == -math.inf
    assert all(t.config["k"] == math.inf and math.isnan(t.config["n"]) for t in loaded)


def test_records_without_meta_are_refused_and_a_meta_that_is_not_an_object_named(tmp_path):
    run("random", 3, tmp_path)
    (tmp_path / "meta.json").unlink()
    with pytest.raises(ValueError, match="no meta.json"):
        jhpo.tune(bowl, SPACE, num_trials=5, seed=6, run_dir=tmp_path, progress=False)
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="meta.json must hold a JSON object"):
        load_run(tmp_path)


def test_opening_a_finished_run_writes_nothing(tmp_path, monkeypatch):
    run("random", 3, tmp_path)
    with open(tmp_path / "reports.jsonl", "w") as f:  # a report of a trial that never finished
        f.write(json.dumps({"trial_id": 7, "resource": 1, "metrics": {"loss": 1.0}}) + "\n")
    before = {p.name: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in tmp_path.iterdir()}

    def refuse(*args, **kwargs):
        raise AssertionError("reading a run must not write")

    monkeypatch.setattr("jhpo.jsonfile.atomic_write_text", refuse)
    monkeypatch.setattr("jhpo.jsonfile.append_line", refuse)
    result = load_run(tmp_path)
    assert len(result.trials) == 3
    after = {p.name: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in tmp_path.iterdir()}
    assert after == before


KILLED_BO_RUN = """
import sys, time
import jhpo
from tests.runs.test_resume import BO_OPTIONS, slow_two_objectives

from tests.runs.test_blackbox import SPACE

jhpo.tune(slow_two_objectives, SPACE,
          searcher="bo", metric=["a", "b"], mode=["min", "min"], searcher_options=BO_OPTIONS,
          num_trials=int(sys.argv[2]), seed=5, run_dir=sys.argv[1], progress=False)
"""


def slow_two_objectives(config):
    time.sleep(0.1)
    return two_objectives(config)


def test_a_bo_run_killed_at_ten_moments_ends_as_the_uninterrupted_run(tmp_path):
    """SIGKILL at ten points (just after a record, and 0.03 to 0.12 s into the next trial's
    ask or evaluation), resuming each time: every trial once, the uninterrupted configs."""
    total = 12
    uninterrupted = run("bo_two_objectives", total)
    run_dir = tmp_path / "killed"
    trials_file = run_dir / "trials.jsonl"
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    kills = 0
    for count, delay in zip(range(1, 11), [0.0, 0.03, 0.06, 0.09, 0.12] * 2):
        before = len(trials_file.read_text().splitlines()) if trials_file.exists() else 0
        kill_after_records(KILLED_BO_RUN, [str(run_dir), str(total)], trials_file,
                           max(count, before + 1), 120, delay_s=delay, env=env)
        kills += 1
    records = [json.loads(line) for line in trials_file.read_text().splitlines()]
    assert kills == 10 and len(records) < total  # the campaign ended before the run did
    resumed = jhpo.tune(two_objectives, SPACE, searcher="bo", metric=["a", "b"],
                        mode=["min", "min"], searcher_options=BO_OPTIONS, num_trials=total,
                        seed=5, run_dir=run_dir, progress=False)
    assert sorted(t.trial_id for t in resumed.trials) == list(range(total))
    by_id = {t.trial_id: t.config for t in resumed.trials}
    assert [by_id[i] for i in range(total)] == [t.config for t in uninterrupted.trials]
