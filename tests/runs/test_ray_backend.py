"""Trials as Ray tasks on a local Ray instance of two CPUs: the core tests of the local
workers, run through ``backend="ray"``."""

import functools

import numpy as np
import pytest

import jhpo
from tests.runs import objectives
from tests.runs.test_resume import BO_OPTIONS
from tests.runs.test_workers import (
    SPACE,
    assert_asha_decisions_match_the_reference,
    assert_every_trial_once,
    most_at_once,
)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_every_trial_runs_once_on_ray_tasks_at_the_same_time(tmp_path):
    result = jhpo.tune(objectives.nap, SPACE, num_trials=6, seed=3, workers=2, backend="ray",
                       run_dir=tmp_path, progress=False)
    _, asks = assert_every_trial_once(tmp_path, 6)
    assert max(len(ask.pending) for ask in asks) == 1
    assert most_at_once(result.trials) == 2
    assert all(t.value == pytest.approx(objectives.bowl(t.config)) for t in result.trials)


def test_synchronous_rounds_on_ray_give_the_configurations_of_one_local_worker(tmp_path):
    rows = []
    for workers, backend in [(1, "local"), (2, "ray")]:
        run_dir = tmp_path / backend
        jhpo.tune(objectives.uneven_bowl, SPACE, searcher="bo", searcher_options=BO_OPTIONS,
                  num_trials=7, seed=2, workers=workers, backend=backend, synchronous=True,
                  batch_size=3, run_dir=run_dir, progress=False)
        trials, _ = assert_every_trial_once(run_dir, 7, num_asked=9)
        rows.append(np.float32([t.row for t in trials]))
    np.testing.assert_array_equal(rows[0], rows[1])


def test_asha_on_ray_decides_as_the_reference_rule_on_the_recorded_reports(tmp_path):
    result = jhpo.tune(objectives.learning_curve, SPACE, metric="loss", num_trials=16, seed=0,
                       workers=2, backend="ray", scheduler="asha",
                       scheduler_options={"max_resource": 9}, run_dir=tmp_path, progress=False)
    assert_every_trial_once(tmp_path, 16)
    assert_asha_decisions_match_the_reference(result, tmp_path)


def test_reports_on_ray_end_trials_as_reports_in_the_driver_do():
    runs = [jhpo.tune(objectives.reports_with_faults, SPACE, metric="loss", num_trials=10,
                      seed=4, workers=workers, backend=backend, fail_fast=False, progress=False)
            for workers, backend in [(1, "local"), (2, "ray")]]
    outcomes = [{t.trial_id: (t.status, t.error, t.value, t.resource) for t in r.trials}
                for r in runs]
    assert outcomes[0] == outcomes[1]


def test_a_ray_task_whose_worker_is_killed_fails_and_the_run_goes_on(tmp_path):
    objective = functools.partial(objectives.killed_once, marker=str(tmp_path / "killed"))
    result = jhpo.tune(objective, SPACE, metric="loss", num_trials=5, workers=2, backend="ray",
                       run_dir=tmp_path / "run", progress=False)
    assert_every_trial_once(tmp_path / "run", 5)
    [failed] = result.failed
    assert "its Ray task failed" in failed.error
    assert len(result.completed) == 4


def test_a_ray_task_past_its_timeout_is_cancelled_and_recorded_failed(tmp_path):
    objective = functools.partial(objectives.hangs_once, marker=str(tmp_path / "hung"))
    result = jhpo.tune(objective, SPACE, num_trials=3, workers=2, backend="ray",
                       trial_timeout_s=1.0, progress=False)
    [failed] = result.failed
    assert "trial_timeout_s=1" in failed.error and failed.duration < 10.0
    assert len(result.completed) == 2


def test_resources_per_trial_that_ray_does_not_know_are_named():
    with pytest.raises(ValueError, match=r"resources_per_trial=\{'num_gpu': 1\} are not options"):
        jhpo.tune(objectives.bowl, SPACE, num_trials=2, workers=2, backend="ray",
                  resources_per_trial={"num_gpu": 1}, progress=False)
