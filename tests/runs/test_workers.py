"""Trials on several local worker processes: every trial once, the pending trials of each
ask, synchronous rounds that do not depend on the number of workers, reports judged by the
driver, and the faults a worker or the driver can meet."""

import functools
import json
import math
import os
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import jhpo
from jhpo.lock import RunDirectoryLocked
from jhpo.runs.directory import RunDirectory
from jhpo.runs.optimizer import Optimizer
from tests.killing import kill_after_records
from tests.runs import objectives
from tests.runs.test_resume import BO_OPTIONS

SPACE = {"x": jhpo.uniform(-5.0, 5.0), "y": jhpo.uniform(-5.0, 5.0)}


def records(run_dir):
    directory = RunDirectory(run_dir)
    return directory.read_trials(), directory.read_asks()


def pending_from_records(trials, asks):
    """For each ask, the trials asked before it and not told before it, from the order of
    the records alone: what its ``pending`` field must say."""
    told_order = [t.trial_id for t in trials]
    expected, asked = [], []
    for ask in asks:
        told = set(told_order[:ask.num_told])
        expected.append(sorted(i for i in asked if i not in told))
        asked.extend(ask.trial_ids)
    return expected


def assert_every_trial_once(run_dir, num_trials, num_asked=None):
    trials, asks = records(run_dir)
    assert sorted(t.trial_id for t in trials) == list(range(num_trials))
    asked = [i for ask in asks for i in ask.trial_ids]
    assert sorted(asked) == list(range(num_asked or num_trials))
    rows = {i: row for ask in asks for i, row in zip(ask.trial_ids, ask.rows)}
    assert all(np.array_equal(np.float32(t.row), np.float32(rows[t.trial_id])) for t in trials)
    assert [ask.pending for ask in asks] == pending_from_records(trials, asks)
    return trials, asks


def most_at_once(trials):
    """The largest number of trials whose [start, end] intervals overlap."""
    edges = sorted([(t.start_time, 1) for t in trials] + [(t.end_time, -1) for t in trials])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_every_trial_runs_once_and_each_ask_records_the_trials_then_pending(tmp_path, workers):
    result = jhpo.tune(objectives.uneven_bowl, SPACE, num_trials=14, seed=3, workers=workers,
                       run_dir=tmp_path, progress=False)
    trials, asks = assert_every_trial_once(tmp_path, 14)
    assert [t.trial_id for t in result.trials] == [t.trial_id for t in trials]
    assert all(t.status == "completed" and t.value == pytest.approx(objectives.bowl(t.config))
               for t in trials)
    # one ask per trial; never more than the other workers' trials pending
    assert all(len(ask.trial_ids) == 1 and len(ask.pending) <= workers - 1 for ask in asks)
    if workers > 1:
        assert max(len(ask.pending) for ask in asks) == workers - 1
    assert json.loads((tmp_path / "meta.json").read_text())["parallel"] == {
        "workers": workers, "backend": "local", "batch_size": None}


def test_trials_on_several_workers_run_at_the_same_time():
    result = jhpo.tune(objectives.nap, SPACE, num_trials=4, workers=2, progress=False)
    assert most_at_once(result.trials) == 2
    sequential = jhpo.tune(functools.partial(objectives.nap, seconds=0.05), SPACE, num_trials=3,
                           progress=False)
    assert most_at_once(sequential.trials) == 1


def test_workers_get_their_environment_before_the_objective_loads_and_import_no_jax():
    result = jhpo.tune(objectives.where_am_i, SPACE, metric="loss", num_trials=4, workers=2,
                       worker_env=lambda i: {"JHPO_TEST_SLOT": str(i)}, progress=False)
    assert {t.metrics["slot"] for t in result.trials} == {"0", "1"}
    assert len({t.metrics["pid"] for t in result.trials} - {os.getpid()}) == 2
    assert not any(t.metrics["jax_imported"] for t in result.trials)


@pytest.mark.parametrize("searcher,options", [("random", None), ("bo", BO_OPTIONS)])
def test_synchronous_rounds_give_the_same_configurations_for_any_number_of_workers(
        tmp_path, searcher, options):
    runs = {}
    for workers in (1, 2, 4):
        run_dir = tmp_path / str(workers)
        jhpo.tune(objectives.uneven_bowl, SPACE, searcher=searcher, searcher_options=options,
                  num_trials=8, seed=2, workers=workers, synchronous=True, batch_size=3,
                  run_dir=run_dir, progress=False)
        runs[workers] = assert_every_trial_once(run_dir, 8, num_asked=9)
    trials, asks = runs[1]
    # rounds of three asked in one call, each after the whole previous round was told; the
    # last round is asked whole, its third trial left for a longer run
    assert [(a.trial_ids, a.num_told, a.pending) for a in asks] == [
        ([0, 1, 2], 0, []), ([3, 4, 5], 3, []), ([6, 7, 8], 6, [])]
    assert [t.trial_id for t in trials] == list(range(8))  # told in trial-id order
    for workers in (2, 4):
        other, other_asks = runs[workers]
        assert [t.trial_id for t in other] == list(range(8))
        assert [t.row for t in other] == [t.row for t in trials]
        assert [t.config for t in other] == [t.config for t in trials]
        assert [a.rows for a in other_asks] == [a.rows for a in asks]


def test_a_synchronous_run_resumed_with_a_larger_budget_is_the_longer_run(tmp_path):
    def run(num_trials, run_dir):
        return jhpo.tune(objectives.uneven_bowl, SPACE, num_trials=num_trials, seed=6, workers=2, synchronous=True,
                         batch_size=4, run_dir=run_dir, progress=False)

    longer = run(10, tmp_path / "longer")
    run(6, tmp_path / "resumed")  # its second round is asked whole and half run
    resumed = run(10, tmp_path / "resumed")
    assert_every_trial_once(tmp_path / "resumed", 10, num_asked=12)
    by_id = {t.trial_id: t.row for t in resumed.trials}
    assert [by_id[i] for i in range(10)] == [t.row for t in longer.trials]


def test_bo_on_workers_sees_the_running_trials_as_pending_and_resumes_exactly(tmp_path):
    jhpo.tune(objectives.uneven_bowl, SPACE, searcher="bo", searcher_options=BO_OPTIONS,
              num_trials=9, seed=1, workers=3, run_dir=tmp_path, progress=False)
    trials, asks = assert_every_trial_once(tmp_path, 9)
    assert any(ask.pending for ask in asks[BO_OPTIONS["num_initial"]:])
    rows = {i: np.float32(row) for ask in asks for i, row in zip(ask.trial_ids, ask.rows)}
    fresh = Optimizer(SPACE, "bo", seed=1, searcher_options=BO_OPTIONS)
    for ask in asks:
        fresh.tell_trials(trials[fresh.num_told:ask.num_told])
        pending = fresh.state.pending
        seen = np.asarray(pending.x)[np.asarray(pending.mask)]
        expected = np.stack([rows[i] for i in ask.pending]) if ask.pending else np.zeros((0, 2))
        assert sorted(map(tuple, seen)) == sorted(map(tuple, expected))
        asked, _ = fresh.ask_rows(1)
        np.testing.assert_array_equal(np.asarray(asked), np.float32(ask.rows))
    rebuilt = Optimizer(SPACE, "bo", seed=1, searcher_options=BO_OPTIONS)
    assert rebuilt.replay(asks, trials)


def asha_decisions_from_reports(run_dir, levels, eta):
    """Replay ASHA's stopping rule on reports.jsonl in the order the driver judged the
    reports: for each trial, the rung it was stopped at (None: it was never stopped)."""
    rungs = {level: [] for level in levels}
    judged = {}
    stopped_at = {}
    for line in (Path(run_dir) / "reports.jsonl").read_text().splitlines():
        report = json.loads(line)
        trial, resource, value = report["trial_id"], report["resource"], report["metrics"]["loss"]
        reached = [level for level in levels if level <= resource]
        if not reached or reached[-1] in judged.setdefault(trial, set()):
            continue
        level = reached[-1]
        judged[trial].add(level)
        rungs[level].append(value)
        better = sum(v < value for v in rungs[level])
        goes_on = len(rungs[level]) < eta or better < math.floor(len(rungs[level]) / eta)
        if level != levels[-1] and not goes_on:
            stopped_at[trial] = level
    return stopped_at


def assert_asha_decisions_match_the_reference(result, run_dir):
    levels, eta = (1.0, 3.0, 9.0), 3
    trial_ids = [json.loads(line)["trial_id"]
                 for line in (Path(run_dir) / "reports.jsonl").read_text().splitlines()]
    assert trial_ids != sorted(trial_ids)  # the reports of trials on several workers interleave
    stopped_at = asha_decisions_from_reports(run_dir, levels, eta)
    assert stopped_at
    for trial in result.trials:
        if trial.trial_id in stopped_at:
            assert (trial.status, trial.resource) == ("stopped", stopped_at[trial.trial_id])
        else:
            assert (trial.status, trial.resource) == ("completed", 9.0)


def test_asha_on_four_workers_decides_as_the_reference_rule_on_the_recorded_reports(tmp_path):
    result = jhpo.tune(objectives.learning_curve, SPACE, metric="loss", num_trials=24, seed=0,
                       workers=4, scheduler="asha", scheduler_options={"max_resource": 9},
                       run_dir=tmp_path, progress=False)
    assert_every_trial_once(tmp_path, 24)
    assert_asha_decisions_match_the_reference(result, tmp_path)


def test_reports_from_workers_end_trials_as_reports_in_the_driver_do():
    runs = [jhpo.tune(objectives.reports_with_faults, SPACE, metric="loss", num_trials=12,
                      seed=4, workers=workers, fail_fast=False, progress=False)
            for workers in (1, 2)]
    outcomes = [{t.trial_id: (t.status, t.error, t.value, t.resource) for t in r.trials}
                for r in runs]
    assert outcomes[0] == outcomes[1]
    errors = [error for status, error, _, _ in outcomes[1].values() if status == "failed"]
    assert any("metric 'loss' is not among the returned metrics" in e for e in errors)
    assert any("non-finite" in e for e in errors)


def test_a_worker_killed_mid_trial_fails_that_trial_and_a_fresh_worker_goes_on(tmp_path):
    objective = functools.partial(objectives.killed_once, marker=str(tmp_path / "killed"))
    result = jhpo.tune(objective, SPACE, metric="loss", num_trials=6, workers=2,
                       run_dir=tmp_path / "run", progress=False)
    assert_every_trial_once(tmp_path / "run", 6)
    [failed] = result.failed
    assert "killed by SIGKILL" in failed.error
    assert len(result.completed) == 5
    assert len({t.metrics["pid"] for t in result.completed}) >= 2


def test_a_trial_past_its_timeout_is_ended_and_recorded_failed(tmp_path):
    objective = functools.partial(objectives.hangs_once, marker=str(tmp_path / "hung"))
    # one worker: the trial still runs in a process, the only thing that can be ended
    result = jhpo.tune(objective, SPACE, num_trials=3, trial_timeout_s=1.0, progress=False)
    [failed] = result.failed
    assert failed.trial_id == 0 and "trial_timeout_s=1" in failed.error
    assert failed.duration < 10.0
    assert [t.status for t in result.trials[1:]] == ["completed", "completed"]


def test_a_second_driver_on_a_run_in_progress_fails_at_once(tmp_path):
    flag = tmp_path / "go"
    objective = functools.partial(objectives.waits_for, flag=str(flag))
    first = {}
    driver = threading.Thread(target=lambda: first.update(result=jhpo.tune(
        objective, SPACE, num_trials=3, workers=2, run_dir=tmp_path / "run", progress=False)))
    driver.start()
    try:
        while not (tmp_path / "run" / "asks.jsonl").exists():
            time.sleep(0.02)
        started = time.monotonic()
        with pytest.raises(RunDirectoryLocked, match=f"in use by process {os.getpid()}"):
            jhpo.tune(objective, SPACE, num_trials=3, workers=2, run_dir=tmp_path / "run",
                      progress=False)
        assert time.monotonic() - started < 2.0
    finally:
        flag.touch()
        driver.join()
    assert [t.status for t in first["result"].trials] == ["completed"] * 3


DRIVER_SCRIPT = textwrap.dedent("""
    import functools, sys
    import jhpo
    from tests.runs import objectives
    space = {"x": jhpo.uniform(-5.0, 5.0), "y": jhpo.uniform(-5.0, 5.0)}
    jhpo.tune(functools.partial(objectives.leaves_its_pid, folder=sys.argv[2]), space,
              num_trials=10, seed=7, workers=3, run_dir=sys.argv[1], progress=False)
""")


def process_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1].startswith("Z")  # a zombie is gone too
    except FileNotFoundError:
        return True


def test_a_killed_driver_takes_its_workers_along_and_resumes_without_loss_or_repeat(tmp_path):
    run_dir, pids = tmp_path / "run", tmp_path / "pids"
    pids.mkdir()
    before = kill_after_records(DRIVER_SCRIPT, [str(run_dir), str(pids)], run_dir / "trials.jsonl",
                                count=4, timeout_s=120)
    trials, asks = records(run_dir)
    in_flight = sorted({i for ask in asks for i in ask.trial_ids} - {t.trial_id for t in trials})
    assert len(trials) >= 4 and in_flight
    deadline = time.monotonic() + 10
    workers = [int(p.name) for p in pids.iterdir()]
    while not all(map(process_gone, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers and all(map(process_gone, workers))

    objective = functools.partial(objectives.leaves_its_pid, folder=str(pids), seconds=0.05)
    jhpo.tune(objective, SPACE, num_trials=10, seed=7, workers=3, run_dir=run_dir, progress=False)
    after = (run_dir / "trials.jsonl").read_text().splitlines()
    assert after[:len(before)] == before  # nothing recorded before the kill was touched
    resumed, resumed_asks = assert_every_trial_once(run_dir, 10)
    asked_before = {i: row for ask in asks for i, row in zip(ask.trial_ids, ask.rows)}
    for trial in resumed:
        if trial.trial_id in in_flight:  # run again under its id, with the row asked before
            assert np.array_equal(np.float32(trial.row), np.float32(asked_before[trial.trial_id]))


def test_a_systematic_failure_on_workers_stops_the_run_after_the_first_three_trials(tmp_path):
    with pytest.raises(RuntimeError, match="the first 3 trials all failed with: KeyError"):
        jhpo.tune(objectives.misconfigured, SPACE, num_trials=20, workers=2, run_dir=tmp_path,
                  progress=False)
    trials, _ = records(tmp_path)
    assert 3 <= len(trials) < 20 and all(t.status == "failed" for t in trials)


def test_an_objective_that_cannot_be_pickled_is_named():
    lock = threading.Lock()

    def holds_a_lock(config):
        with lock:
            return objectives.bowl(config)

    with pytest.raises(TypeError, match="objective '.*holds_a_lock' cannot be sent to worker"):
        jhpo.tune(holds_a_lock, SPACE, num_trials=2, workers=2, progress=False)
