import json
import textwrap

import pytest

import jhpo
from jhpo.population_tuner import tune_population
from jhpo.results import load_run
from tests.killing import kill_after_records
from tests.test_population import TASK

SPACE = {
    "learning_rate": jhpo.loguniform(1e-3, 3e-1),
    "momentum": jhpo.uniform(0.0, 0.9),
    "batch_size": jhpo.randint(1, 32),
}
STEPS = 27


def run(scheduler, run_dir=None, num_trials=16, space=SPACE, **options):
    return tune_population(TASK, space, population_size=4, num_trials=num_trials, steps=STEPS,
                           seed=5, run_dir=run_dir, progress=False, scheduler=scheduler,
                           scheduler_options={"interval": 1, **options})


def outline(result):
    return sorted((t.trial_id, t.status, t.resource, t.parent_id, t.value,
                   json.dumps(t.config, sort_keys=True)) for t in result.trials)


@pytest.mark.parametrize("scheduler", ["asha", "hyperband", "median"])
def test_stopping_schedulers_refill_slots_and_save_budget(scheduler):
    result = run(scheduler)
    assert sorted(t.trial_id for t in result.trials) == list(range(16))
    stopped = [t for t in result.trials if t.status == "stopped"]
    completed = [t for t in result.trials if t.status == "completed"]
    assert stopped and completed
    assert all(t.resource == STEPS for t in completed) and all(t.resource < STEPS for t in stopped)
    assert sum(t.resource for t in result.trials) < 0.7 * 16 * STEPS
    if scheduler != "median":
        assert {t.resource for t in stopped} <= {1.0, 3.0, 9.0}  # ASHA's rungs, eta = 3


def test_no_recompilation_per_decision(monkeypatch):
    from jhpo import population_scheduling

    seen = {}
    original = population_scheduling.run_scheduled

    def spy(*args, **kwargs):
        result, programs = original(*args, **kwargs)
        seen["programs"] = programs
        return result, programs

    monkeypatch.setattr("jhpo.population_tuner.run_scheduled", spy)
    tune_population(TASK, SPACE, population_size=4, num_trials=12, steps=STEPS, seed=11,
                    progress=False, scheduler="asha", scheduler_options={"interval": 1})
    programs = seen["programs"]
    # fresh states, one interval of training, evaluation: at most once each, whatever
    # the number of decisions and refills (cached programs from earlier tests count 0)
    assert programs.num_compiles <= 3
    assert population_scheduling._select._cache_size() <= 2
    assert population_scheduling._gather._cache_size() <= 1


def test_pbt_copies_record_a_replayable_lineage():
    result = run("pbt", interval=3)
    by_id = {t.trial_id: t for t in result.trials}
    children = [t for t in result.trials if t.parent_id is not None]
    assert children
    for child in children:
        parent = by_id[child.parent_id]
        # a copy starts where its donor stood, and the donor is a trial of the same run
        assert child.start_resource <= parent.resource
        assert child.start_resource % 3 == 0
    # four members run to the end: four trials complete at the last step
    assert sum(t.status == "completed" and t.resource == STEPS for t in result.trials) == 4
    # segments of one member cover the run without gaps: every stopped segment that was
    # replaced ends at a copy step
    assert all(t.resource % 3 == 0 for t in result.trials if t.status == "stopped")


def test_diverging_members_fail_and_the_run_goes_on():
    space = {**SPACE, "learning_rate": jhpo.choice([0.05, 1e4])}
    result = run("asha", space=space, num_trials=10)
    failed = [t for t in result.trials if t.status == "failed"]
    assert failed and all(t.config["learning_rate"] == 1e4 and t.value is None for t in failed)
    assert len(result.trials) == 10 and result.best.config["learning_rate"] == 0.05


def test_bad_scheduler_options_are_named():
    with pytest.raises(ValueError, match="scheduler='sha'"):
        run("sha")
    with pytest.raises(ValueError, match="interval=5 must be a positive divisor of steps=27"):
        run("asha", interval=5)
    with pytest.raises(ValueError, match=r"\['rungs'\] are not options of 'asha'"):
        run("asha", rungs=3)
    with pytest.raises(ValueError, match="checkpoint_every=0"):
        run("asha", checkpoint_every=0)


KILLED_RUN = textwrap.dedent("""
    import sys
    import jax
    from tests.test_population_scheduling import run
    jax.config.update("jax_platforms", "cpu")
    run(sys.argv[2], sys.argv[1], checkpoint_every=int(sys.argv[3]))
""")


@pytest.mark.parametrize("scheduler,every", [("asha", 1), ("pbt", 1), ("asha", 4)])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, scheduler, every):
    killed_dir = tmp_path / "killed"
    trials_file = killed_dir / "trials.jsonl"
    before = kill_after_records(KILLED_RUN, [str(killed_dir), scheduler, str(every)], trials_file,
                                3, 180)
    assert len(before) >= 3

    resumed = run(scheduler, killed_dir, checkpoint_every=every)
    after = trials_file.read_text().splitlines()
    assert after[: len(before)] == before
    ids = [json.loads(line)["trial_id"] for line in after]
    assert len(ids) == len(set(ids))
    reference = run(scheduler, tmp_path / "reference", checkpoint_every=every)
    assert outline(resumed) == outline(reference)
    assert outline(load_run(killed_dir)) == outline(reference)


def test_member_step_budget_stops_starting_trials():
    result = tune_population(TASK, SPACE, population_size=4, num_trials=100, steps=STEPS, seed=5,
                             progress=False, scheduler="asha", scheduler_options={"interval": 1},
                             max_member_steps=150)
    used = sum(t.resource for t in result.trials)
    # trials in flight when the budget runs out still finish: at most a slot's worth over
    assert 150 <= used <= 150 + 4 * STEPS
    assert len(result.trials) < 100
