import json
import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo import schedulers
from jhpo.goal import Goal
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.population import tune_population
from jhpo.runs.directory import RunDirectory, load_run
from jhpo.runs.population_loop import run_population
from jhpo.runs.records import Result
from jhpo.runs.schedule import schedule_for
from jhpo.runs.shell import run_meta
from jhpo.space import Space
from tests.killing import kill_after_records
from tests.population.toy_task import TASK

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


@pytest.fixture
def seen(monkeypatch):
    """Filled with the compiled ``programs`` of the next scheduled ``tune_population``."""
    from jhpo.runs import population_loop

    seen = {}
    original = population_loop.run_population

    def spy(*args, **kwargs):
        run = original(*args, **kwargs)
        seen["programs"] = run.programs
        return run

    monkeypatch.setattr("jhpo.runs.population.run_population", spy)
    return seen


def test_no_recompilation_per_decision(seen):
    tune_population(TASK, SPACE, population_size=4, num_trials=12, steps=STEPS, seed=11,
                    progress=False, scheduler="asha", scheduler_options={"interval": 1})
    compiles = seen["programs"].compiles
    # fresh states, one interval of training, evaluation, loading new members into
    # slots: at most once each, whatever the number of decisions and refills (cached
    # programs from earlier tests count 0)
    assert set(compiles) <= {"init", "advance", "evaluate", "select"}
    assert all(count <= 1 for count in compiles.values())


def test_promotion_form_compiles_once(seen):
    from jhpo import schedulers

    result = tune_population(TASK, SPACE, population_size=4, num_trials=12, steps=STEPS, seed=11,
                             progress=False, scheduler="asha",
                             scheduler_options={"interval": 1, "form": "promotion"})
    assert sum(t.resource > 1 for t in result.trials) >= 4  # promotions did happen
    # resuming a paused member is the same select as loading a fresh one
    assert all(count <= 1 for count in seen["programs"].compiles.values())
    # the promotion rule compiles once per capacity of its book (8, then 16 trials)
    assert schedulers.promote._cache_size() <= 2


def test_promotion_form_promotes_the_top_of_each_rung_and_resumes_exactly(tmp_path):
    result = run("asha", tmp_path, form="promotion")
    by_id = {t.trial_id: t for t in result.trials}
    assert sorted(by_id) == list(range(16))
    at_rung = {1.0: {}, 3.0: {}, 9.0: {}}
    for trial_id, resource, metrics in curves(tmp_path):
        if resource in at_rung:
            at_rung[resource][trial_id] = metrics["val_error"]
    # a run ends only when nothing is promotable: the top floor(n / 3) of each rung went on
    for rung, following in ((1.0, 3.0), (3.0, 9.0)):
        values = at_rung[rung]
        top = sorted(values, key=lambda t: (values[t], t))[: len(values) // 3]
        assert top and set(top) <= set(at_rung[following])
    # a trial never promoted stops at its rung, with the value it reported there
    for t in result.trials:
        assert t.status == "stopped" and t.error.startswith("not promoted past step")
        assert t.value == at_rung[t.resource][t.trial_id]
    # a paused member resumes where it stood: trials 0 to 3 are the first four configurations
    # of an unscheduled run too, and there train without pause
    plain = tune_population(TASK, SPACE, population_size=4, num_trials=4, steps=9, seed=5,
                            progress=False)
    resumed = [t for t in plain.trials if t.trial_id in at_rung[9.0]]
    assert resumed
    for t in resumed:
        assert by_id[t.trial_id].config == t.config
        assert at_rung[9.0][t.trial_id] == pytest.approx(t.value, rel=1e-5)


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
    with pytest.raises(ValueError, match=r"scheduler 'asha' of tune_population has no option 'rungs'"):
        run("asha", rungs=3)
    with pytest.raises(ValueError, match="checkpoint_every=0"):
        run("asha", checkpoint_every=0)
    with pytest.raises(ValueError, match="form='eager' is not one of"):
        run("asha", form="eager")
    with pytest.raises(ValueError, match=r"scheduler 'hyperband' of tune_population has no option 'form'"):
        run("hyperband", form="promotion")
    with pytest.raises(ValueError, match="no option 'grace_intervals'; did you mean"):
        run("median", grace_intervals=2)
    with pytest.raises(ValueError, match="max_resource=9: in tune_population the last rung is the full"):
        run("asha", max_resource=9)
    with pytest.raises(ValueError, match=r"decides at steps \[2.0, 6.0, 18.0, 27.0\]; with interval=3"):
        run("asha", min_resource=2, interval=3)
    with pytest.raises(ValueError, match="levels .* whole numbers ending at steps=27"):
        run(schedulers.asha(min_resource=1, max_resource=81))


def test_tune_and_tune_population_take_the_same_scheduler_options_and_objects():
    """min_resource / max_resource / eta name the same thing in both, in steps here; the
    defaults are one interval for the first rung and the full training for the last."""
    by_name = run("asha", min_resource=3, eta=3, interval=3)
    by_object = run(schedulers.asha(min_resource=3, max_resource=27, eta=3), interval=3)
    default = run("asha", interval=3)
    assert [t.config for t in by_name.trials] == [t.config for t in by_object.trials]
    assert [(t.status, t.resource) for t in by_name.trials] == [
        (t.status, t.resource) for t in by_object.trials]
    assert {t.resource for t in by_name.trials if t.status == "stopped"} <= {3.0, 9.0}
    assert [(t.status, t.resource) for t in default.trials] == [
        (t.status, t.resource) for t in by_name.trials]


def curves(run_dir):
    """The reports on file, in order, without their wall-clock times."""
    lines = (run_dir / "reports.jsonl").read_text().splitlines()
    return [(r["trial_id"], r["resource"], r["metrics"]) for r in map(json.loads, lines)]


KILLED_RUN = textwrap.dedent("""
    import json
    import sys
    import jax
    from tests.runs.test_population_loop import run
    jax.config.update("jax_platforms", "cpu")
    run(sys.argv[2], sys.argv[1], checkpoint_every=int(sys.argv[3]), **json.loads(sys.argv[4]))
""")


@pytest.mark.parametrize("scheduler,every,extra,watch,count", [
    ("asha", 1, {}, "trials.jsonl", 3), ("pbt", 1, {}, "trials.jsonl", 3),
    ("asha", 4, {}, "trials.jsonl", 3),
    # the promotion form records its trials at the end (32 reports in all): kill it in
    # mid-run, with trials paused, by counting its reports
    ("asha", 2, {"form": "promotion"}, "reports.jsonl", 20)])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, scheduler, every, extra, watch,
                                                        count):
    killed_dir = tmp_path / "killed"
    trials_file = killed_dir / "trials.jsonl"
    watched = kill_after_records(KILLED_RUN, [str(killed_dir), scheduler, str(every), json.dumps(extra)],
                                 killed_dir / watch, count, 180)
    assert len(watched) >= count
    before = trials_file.read_text().splitlines() if trials_file.exists() else []

    resumed = run(scheduler, killed_dir, checkpoint_every=every, **extra)
    after = trials_file.read_text().splitlines()
    assert after[: len(before)] == before
    ids = [json.loads(line)["trial_id"] for line in after]
    assert len(ids) == len(set(ids))
    reference = run(scheduler, tmp_path / "reference", checkpoint_every=every, **extra)
    assert outline(resumed) == outline(reference)
    assert outline(load_run(killed_dir)) == outline(reference)
    # the learning curves on file are the uninterrupted run's: none lost, none twice
    assert curves(killed_dir) == curves(tmp_path / "reference")


def test_member_step_budget_stops_starting_trials():
    result = tune_population(TASK, SPACE, population_size=4, num_trials=100, steps=STEPS, seed=5,
                             progress=False, scheduler="asha", scheduler_options={"interval": 1},
                             max_member_steps=150)
    used = sum(t.resource for t in result.trials)
    # trials in flight when the budget runs out still finish: at most a slot's worth over
    assert 150 <= used <= 150 + 4 * STEPS
    assert len(result.trials) < 100


def test_every_interval_is_reported(tmp_path):
    result = run("asha", tmp_path, num_trials=8)
    reports = curves(tmp_path)
    # one report per trial and step (interval = 1), at steps 1 to the trial's last one
    by_trial = {}
    for trial_id, resource, metrics in reports:
        by_trial.setdefault(trial_id, []).append(resource)
        assert set(metrics) == {"val_error", "val_max", "train_loss"}
    assert by_trial == {t.trial_id: [float(s) for s in range(1, int(t.resource) + 1)]
                        for t in result.trials}
    # a trial's last report holds the metrics it was recorded with
    last = {trial_id: metrics for trial_id, _, metrics in reports}
    assert all(last[t.trial_id] == t.metrics and t.value == t.metrics["val_error"]
               for t in result.trials)


# ----------------------------------------------------------------------------- several objectives

def two_metric_task():
    """The regression task, also reporting the negated squared weight norm (to maximise:
    small weights) and a margin constraint on the validation error."""
    def evaluate(state, hp, data):
        metrics = TASK.evaluate(state, hp, data)
        return {**metrics, "neg_norm": -jnp.sum(state["w"] ** 2), "margin": 0.9 - metrics["val_error"]}

    return TASK._replace(evaluate=evaluate)


def run_goal(goal, scheduler, run_dir=None, num_trials=12, steps=9):
    space = Space(SPACE)
    optimizer = Optimizer(space, "random", seed=5, mode=list(goal.modes),
                          num_constraints=len(goal.constraints))
    directory = None if run_dir is None else RunDirectory(run_dir)
    result = Result.from_meta([], run_meta(space, "random", goal, 5))
    run_population(two_metric_task(), optimizer, goal, schedule_for(scheduler, {"interval": 1}, steps),
                   population_size=4, num_trials=num_trials, steps=steps, seed=5,
                   train_options={"max_batch_size": 32}, directory=directory, result=result,
                   progress=False)
    return result


def test_population_asha_judges_several_objectives_by_nondominated_rank(tmp_path):
    from tests.schedulers.test_decisions import reference_pareto_ahead

    goal = Goal.from_arguments(["val_error", "neg_norm"], ["min", "max"], ["margin"])
    result = run_goal(goal, "asha", tmp_path)
    by_id = {t.trial_id: t for t in result.trials}
    assert sorted(by_id) == list(range(12))
    for t in result.trials:
        assert t.value == [t.metrics["val_error"], t.metrics["neg_norm"]]
        assert t.feasible == (t.metrics["margin"] > 0)
    assert {t.feasible for t in result.trials} == {True, False}
    assert any(t.status == "stopped" for t in result.trials)
    # replay the decisions from the reports, which are written in the order the trials
    # were judged: at rungs 1 and 3 a trial goes on iff fewer than floor(n / 3) of the n
    # points recorded there (its own included) rank ahead of it
    reached = {1.0: [], 3.0: []}
    for trial_id, resource, metrics in curves(tmp_path):
        if resource in reached:
            reached[resource].append([metrics["val_error"], -metrics["neg_norm"]])
            points = reached[resource]
            ahead = reference_pareto_ahead(np.asarray(points, np.float32))[-1]
            goes_on = len(points) < 3 or ahead < math.floor(len(points) / 3)
            assert goes_on == (by_id[trial_id].resource > resource)


def test_population_pbt_and_median_refuse_several_objectives():
    goal = Goal.from_arguments(["val_error", "neg_norm"], ["min", "max"])
    with pytest.raises(ValueError, match="scheduler='pbt' ranks members by one fitness"):
        run_goal(goal, "pbt")
    with pytest.raises(ValueError, match="scheduler='median' judges one objective"):
        run_goal(goal, "median")
    with pytest.raises(ValueError, match="metric 'latency' is not among the metrics task"):
        run_goal(Goal.from_arguments(["val_error", "latency"]), "asha", num_trials=1, steps=1)


def test_a_pbt_child_starts_from_its_donors_weights_and_optimizer_state(tmp_path, monkeypatch):
    from jhpo.checkpoint import Checkpoints

    # the checkpoint saved after each boundary holds the population right after PBT's copies
    saved = []
    original_save = Checkpoints.save

    def save_and_keep(self, step, state, record):
        saved.append((jax.device_get(state["carry"][0]),
                      {name: np.array(column) for name, column in state["slots"].items()}))
        return original_save(self, step, state, record)

    monkeypatch.setattr(Checkpoints, "save", save_and_keep)
    run("pbt", tmp_path, interval=3)
    copies = 0
    for states, slots in saved:
        # a child that has not trained yet: it began at its donor's step, in this boundary
        for child in np.flatnonzero((slots["parent"] >= 0) & (slots["steps"] == slots["start_step"])):
            [donor] = np.flatnonzero(slots["trial"] == slots["parent"][child])
            assert donor != child
            for path, leaf in jax.tree_util.tree_leaves_with_path(states):
                assert leaf[child].tobytes() == leaf[donor].tobytes(), (
                    f"{jax.tree_util.keystr(path)} of slot {child} is not its donor slot {donor}'s")
            copies += 1
    assert copies >= 3
    # the optimizer state copied is not trivially equal: the momentum traces are not zero
    momentum = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(saved[-1][0])
                if "opt" in jax.tree_util.keystr(path)]
    assert momentum and all(np.abs(leaf).max() > 0 for leaf in momentum)


def test_a_searcher_of_ones_own_without_a_pending_field_drives_a_scheduled_run(tmp_path,
                                                                                monkeypatch):
    """Nothing outside a searcher reads or writes its state: one whose state is a bare
    counter serves a scheduled run, and a resume rebuilds it by replay."""
    space = Space(SPACE)

    def init(key):
        return {"key": key, "told": jnp.zeros((), jnp.int32)}

    def ask(state, key, n):
        return space.sample(key, n), state, jnp.ones(n, bool)

    def tell(state, rows, values):
        return {**state, "told": state["told"] + rows.shape[0]}

    counting = jhpo.Searcher(init, ask, tell)

    def run(run_dir):
        return tune_population(TASK, space, searcher=counting, population_size=4, num_trials=10,
                               steps=STEPS, seed=5, run_dir=run_dir, progress=False,
                               scheduler="asha", scheduler_options={"interval": 3})

    whole = run(tmp_path / "whole")
    assert sorted(t.trial_id for t in whole.trials) == list(range(10))
    # stopped by Ctrl-C in the fifth interval: trials are running, and resume replays
    advance, calls = jhpo.population.PopulationPrograms.advance, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return advance(self, *args, **kwargs)

    monkeypatch.setattr(jhpo.population.PopulationPrograms, "advance", interrupted)
    assert run(tmp_path / "cut").interrupted
    monkeypatch.setattr(jhpo.population.PopulationPrograms, "advance", advance)
    assert outline(run(tmp_path / "cut")) == outline(whole)
