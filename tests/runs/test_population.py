import json
import math
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

import jhpo
from jhpo import population as pop
from jhpo.runs import population_loop
from jhpo.runs.directory import load_run
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.population import largest_batch_size, tune_population
from tests.killing import kill_after_records
from tests.population.toy_task import TASK

SPACE = {
    "learning_rate": jhpo.loguniform(1e-3, 3e-1),
    "momentum": jhpo.uniform(0.0, 0.9),
    "batch_size": jhpo.randint(1, 32),
}
STEPS = 8


def _tune(run_dir=None, num_trials=6, space=SPACE, task=TASK, **options):
    return tune_population(
        task, space, population_size=4, num_trials=num_trials, steps=STEPS, seed=3, run_dir=run_dir, progress=False, **options
    )


def _records(result):
    return [(t.trial_id, t.config, t.value, t.status) for t in sorted(result.trials, key=lambda t: t.trial_id)]


def test_records_one_trial_per_member(tmp_path):
    result = _tune(tmp_path / "run")
    assert [t.trial_id for t in result.trials] == list(range(6))
    assert all(t.status == "completed" and t.value == t.metrics["val_error"] for t in result.trials)
    assert all(t.resource == STEPS and t.row is not None for t in result.trials)
    # Two populations (4 + 2 members): members of one population share their times.
    assert len({(t.start_time, t.end_time) for t in result.trials}) == 2
    assert result.best.value == min(t.value for t in result.trials)
    loaded = load_run(tmp_path / "run")
    assert _records(loaded) == _records(result)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert (meta["task"], meta["steps"], meta["population_size"], meta["metric"]) == ("regression", STEPS, 4, "val_error")
    asks = [json.loads(line) for line in (tmp_path / "run" / "asks.jsonl").read_text().splitlines()]
    assert [a["trial_ids"] for a in asks] == [[0, 1, 2, 3], [4, 5]]
    assert [a["num_told"] for a in asks] == [0, 4]


def test_member_matches_training_it_alone():
    result = _tune()
    trial = result.trials[5]
    alone = pop.train_configs(TASK, [trial.config], pop.member_seeds(3, 1, offset=5), STEPS, max_batch_size=32)
    assert alone.metrics["val_error"][0] == pytest.approx(trial.value, rel=1e-5)


def test_diverging_members_are_recorded_failed():
    space = {**SPACE, "learning_rate": jhpo.loguniform(1e-2, 1e3)}
    result = _tune(space=space, num_trials=8)
    failed = [t for t in result.trials if t.status == "failed"]
    assert failed and all(t.value is None and t.error for t in failed)
    # Diverged in training (frozen), or finished training with a non-finite validation error.
    diverged = [t for t in failed if "diverged" in t.error]
    assert diverged and all(0 <= t.metrics["failed_step"] < STEPS for t in diverged)
    assert all(not math.isfinite(t.metrics["val_error"]) for t in failed if t not in diverged)
    assert result.best is not None and result.best.status == "completed"


def test_resume_continues_the_same_run(tmp_path):
    uninterrupted = _tune(tmp_path / "whole", num_trials=8)
    _tune(tmp_path / "resumed", num_trials=4)
    resumed = _tune(tmp_path / "resumed", num_trials=8)
    assert _records(resumed) == _records(uninterrupted)
    lines = (tmp_path / "resumed" / "trials.jsonl").read_text().splitlines()
    assert len(lines) == 8


def test_ctrl_c_stops_cleanly_and_the_interrupted_population_restarts(tmp_path, monkeypatch,
                                                                       caplog):
    uninterrupted = _tune(tmp_path / "whole", num_trials=8)
    real_train = pop.train
    calls = []

    def interrupted_on_second_population(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(population_loop.pop, "train", interrupted_on_second_population)
    with caplog.at_level("WARNING", logger="jhpo"):
        partial = _tune(tmp_path / "run", num_trials=8)
    assert partial.interrupted and len(partial.trials) == 4
    [line] = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert line.startswith("interrupted: 4 trials recorded in") and "same run_dir" in line
    asks = (tmp_path / "run" / "asks.jsonl").read_text().splitlines()
    assert json.loads(asks[-1])["trial_ids"] == [4, 5, 6, 7]
    assert len((tmp_path / "run" / "trials.jsonl").read_text().splitlines()) == 4
    monkeypatch.setattr(population_loop.pop, "train", real_train)
    resumed = _tune(tmp_path / "run", num_trials=8)
    assert _records(resumed) == _records(uninterrupted)
    assert len((tmp_path / "run" / "asks.jsonl").read_text().splitlines()) == 2


def test_population_cut_while_recording_keeps_recorded_members(tmp_path):
    run = tmp_path / "run"
    uninterrupted = _tune(run, num_trials=8)
    # Pretend the run died after recording two members of the second population.
    lines = (run / "trials.jsonl").read_text().splitlines(keepends=True)
    (run / "trials.jsonl").write_text("".join(lines[:6]))
    resumed = _tune(run, num_trials=8)
    assert _records(resumed) == _records(uninterrupted)
    assert len((run / "trials.jsonl").read_text().splitlines()) == 8


KILLED_RUN = textwrap.dedent("""
    import sys
    import jax
    from tests.runs.test_population import _tune
    jax.config.update("jax_platforms", "cpu")
    _tune(sys.argv[1], num_trials=12)
""")


def test_a_run_killed_mid_population_resumes_to_the_uninterrupted_result(tmp_path):
    killed = tmp_path / "killed"
    # killed once the first population is recorded: the second is training or recording
    before = kill_after_records(KILLED_RUN, [str(killed)], killed / "trials.jsonl", 4, 180)
    assert 4 <= len(before) < 12
    resumed = _tune(killed, num_trials=12)
    after = (killed / "trials.jsonl").read_text().splitlines()
    assert after[: len(before)] == before
    assert sorted(json.loads(line)["trial_id"] for line in after) == list(range(12))
    assert _records(resumed) == _records(_tune(tmp_path / "whole", num_trials=12))
    # one report per trial, none twice: the interrupted population reported again
    reports = [json.loads(line)["trial_id"] for line in (killed / "reports.jsonl").read_text().splitlines()]
    assert sorted(reports) == list(range(12))


def test_every_trial_reports_its_recorded_metrics_at_its_last_step(tmp_path):
    result = _tune(tmp_path, num_trials=6)
    reports = [json.loads(line) for line in (tmp_path / "reports.jsonl").read_text().splitlines()]
    assert [(r["trial_id"], r["resource"]) for r in reports] == [(i, STEPS) for i in range(6)]
    assert all(r["metrics"] == t.metrics for r, t in zip(reports, result.trials))


def test_chunks_and_batch_buckets_train_the_same_trials():
    """A population trained two members at a time, or grouped by batch size, is the
    population trained at once: the same configurations reach the same values."""
    whole = _tune(num_trials=6)
    for options in ({"chunk_size": 2}, {"batch_strategy": "bucket"}, {"chunk_size": 3, "batch_strategy": "bucket"}):
        pieces = _tune(num_trials=6, **options)
        assert [t.config for t in pieces.trials] == [t.config for t in whole.trials]
        np.testing.assert_allclose([t.value for t in pieces.trials], [t.value for t in whole.trials],
                                   rtol=1e-5)
        np.testing.assert_allclose([t.metrics["train_loss"] for t in pieces.trials],
                                   [t.metrics["train_loss"] for t in whole.trials], rtol=1e-5)


def test_train_loss_is_the_mean_of_the_last_tenth_of_the_training():
    steps = 30
    result = tune_population(TASK, SPACE, population_size=2, num_trials=2, steps=steps, seed=3,
                             progress=False)
    for trial in result.trials:
        alone = pop.train_configs(TASK, [trial.config], pop.member_seeds(3, 1, offset=trial.trial_id),
                                  steps, max_batch_size=32)
        assert trial.metrics["train_loss"] == pytest.approx(float(np.mean(alone.losses[0][-3:])), rel=1e-5)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="population_size"):
        tune_population(TASK, SPACE, population_size=0)
    with pytest.raises(ValueError, match="num_trials"):
        tune_population(TASK, SPACE, num_trials=-1)
    with pytest.raises(ValueError, match="optimizer"):
        _tune(space={**SPACE, "optimizer": jhpo.choice(["sgd", "adam"])})
    with pytest.raises(ValueError, match="chunk_size=2 and batch_strategy='mask' need every member"):
        _tune(chunk_size=2, scheduler="asha")
    with pytest.raises(ValueError, match="batch_strategy='bucket' need every member"):
        _tune(batch_strategy="bucket", scheduler="pbt")


def test_largest_batch_size_comes_from_the_space():
    assert largest_batch_size(jhpo.Space(SPACE)) == 32
    assert largest_batch_size(jhpo.Space({"batch_size": jhpo.randint(8, 100)})) == 128
    assert largest_batch_size(jhpo.Space({"batch_size": jhpo.choice([16, 48])})) == 64
    assert largest_batch_size(jhpo.Space({"learning_rate": jhpo.uniform(0, 1)})) is None
    assert np.isscalar(largest_batch_size(jhpo.Space(SPACE)))


def _evaluate_more(state, hp, data):
    """The regression task's metrics plus a second objective and a constraint."""
    metrics = TASK.evaluate(state, hp, data)
    return {**metrics, "weight_norm": jnp.sum(state["w"] ** 2), "margin": 0.5 - metrics["val_error"]}


RICH_TASK = TASK._replace(evaluate=_evaluate_more, name="regression_rich")


@pytest.fixture
def told(monkeypatch):
    """Every (goal modes, rows of numbers) the searcher is told during a run."""
    calls = []
    real_tell_rows = Optimizer.tell_rows

    def recording(self, rows, values):
        calls.append((self.goal.modes, len(self.goal.constraints), np.stack(values)))
        return real_tell_rows(self, rows, values)

    monkeypatch.setattr(Optimizer, "tell_rows", recording)
    return calls


def test_several_objectives_give_a_pareto_front(tmp_path, told):
    result = tune_population(
        RICH_TASK, SPACE, metric=["val_error", "weight_norm"], mode=["min", "max"], population_size=4,
        num_trials=8, steps=STEPS, seed=3, run_dir=tmp_path / "run", progress=False,
    )
    trials = sorted(result.trials, key=lambda t: t.trial_id)
    values = np.array([t.value for t in trials])
    np.testing.assert_allclose(values, [[t.metrics["val_error"], t.metrics["weight_norm"]] for t in trials])
    # Brute force: a trial is on the front when no other is at least as good in both
    # objectives (error down, norm up) and better in one.
    signed = values * [1, -1]
    dominated = [any(np.all(o <= v) and np.any(o < v) for o in signed) for v in signed]
    assert [t.trial_id for t in result.pareto_front()] == [t.trial_id for t, d in zip(trials, dominated) if not d]
    assert 0 < len(result.pareto_front()) < len(trials)
    # The searcher has two objectives and is told them signed to be minimised, in trial order.
    assert all(modes == ("min", "max") for modes, _, _ in told)
    np.testing.assert_allclose(np.concatenate([rows for _, _, rows in told]), signed, rtol=1e-6)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert (meta["metric"], meta["mode"]) == (["val_error", "weight_norm"], ["min", "max"])
    assert load_run(tmp_path / "run").pareto_front() == result.pareto_front()


def test_constraints_decide_feasibility(told):
    result = _tune(num_trials=8, metric="val_error", constraints=["margin"], task=RICH_TASK)
    feasible = [t.metrics["margin"] > 0 for t in result.trials]
    assert [t.feasible for t in result.trials] == feasible
    assert any(feasible) and not all(feasible)
    assert result.best.feasible and result.best.value == min(t.value for t in result.trials if t.feasible)
    # Told per trial: the objective, then the constraint value as reported.
    rows = np.concatenate([rows for _, _, rows in told])
    np.testing.assert_allclose(rows, [[t.value, t.metrics["margin"]] for t in result.trials], rtol=1e-6)
    assert all(count == 1 for _, count, _ in told)


def test_maximising_a_metric():
    result = _tune(metric="weight_norm", mode="max", task=RICH_TASK)
    assert all(t.value == t.metrics["weight_norm"] for t in result.trials)
    assert result.best.value == max(t.value for t in result.trials)


def test_unknown_metric_names_the_available_ones():
    with pytest.raises(ValueError, match=r"'latency'.*\['margin', 'train_loss', 'val_error', 'val_max', 'weight_norm'\]"):
        _tune(metric=["val_error", "latency"], task=RICH_TASK)
    with pytest.raises(ValueError, match="'memory'"):
        _tune(constraints=["memory"], task=RICH_TASK)
    with pytest.raises(ValueError, match="mode"):
        _tune(metric=["val_error", "weight_norm"], mode=["min"], task=RICH_TASK)
