import json
import math

import numpy as np
import pytest

import jhpo

SPACE = {"q": jhpo.uniform(0.0, 1.0)}


def learning_curve(config, report):
    """A loss that falls with epochs towards q: good configurations stay good."""
    loss = None
    for epoch in range(1, 28):
        loss = config["q"] + 1.0 / epoch
        report(epoch, {"loss": loss, "epoch": epoch})
    return {"loss": loss}


def run(scheduler, run_dir=None, num_trials=30, **options):
    return jhpo.tune(learning_curve, SPACE, metric="loss", num_trials=num_trials, seed=0,
                     scheduler=scheduler, scheduler_options=options or None, run_dir=run_dir,
                     progress=False)


@pytest.mark.parametrize("scheduler", ["asha", "hyperband", "median"])
def test_schedulers_save_budget_and_keep_the_best(scheduler):
    full = run(None)
    scheduled = run(scheduler, max_resource=27)
    assert scheduled.best.value == full.best.value
    assert sum(t.resource for t in scheduled.trials) < 0.6 * sum(t.resource for t in full.trials)
    stopped = [t for t in scheduled.trials if t.status == "stopped"]
    assert stopped and all(t.resource < 27 and "stopped by" in t.error for t in stopped)
    # a stopped trial's value is its last report
    assert all(t.value == pytest.approx(t.config["q"] + 1.0 / t.resource) for t in stopped)


def test_asha_stops_only_at_rungs():
    result = run("asha", max_resource=27)
    assert {t.resource for t in result.trials} <= {1.0, 3.0, 9.0, 27.0}


def test_every_report_is_recorded(tmp_path):
    result = run("asha", tmp_path, max_resource=27)
    reports = [json.loads(line) for line in (tmp_path / "reports.jsonl").read_text().splitlines()]
    assert len(reports) == sum(int(t.resource) for t in result.trials)
    assert reports[0] == {**reports[0], "trial_id": 0, "resource": 1.0}
    assert set(reports[0]["metrics"]) == {"loss", "epoch"}


def test_resume_rebuilds_the_scheduler_state(tmp_path):
    reference = run("asha", tmp_path / "reference", num_trials=16, max_resource=27)
    partial_dir = tmp_path / "partial"
    run("asha", partial_dir, num_trials=7, max_resource=27)
    # a kill in the middle of trial 7 leaves its first reports behind
    with open(partial_dir / "reports.jsonl", "a") as f:
        f.write(json.dumps({"trial_id": 7, "resource": 1.0, "metrics": {"loss": 9.0}}) + "\n")
        f.write('{"trial_id": 7, "reso')
    resumed = run("asha", partial_dir, num_trials=16, max_resource=27)
    assert [(t.config, t.status, t.resource) for t in resumed.trials] == [
        (t.config, t.status, t.resource) for t in reference.trials]


def test_nan_report_fails_the_trial_and_the_run_goes_on():
    def diverging(config, report):
        for epoch in range(1, 10):
            report(epoch, float("nan") if config["q"] > 0.5 else config["q"])
        return config["q"]

    result = jhpo.tune(diverging, SPACE, num_trials=12, scheduler="asha",
                       scheduler_options={"max_resource": 9}, progress=False)
    failed = [t for t in result.trials if t.config["q"] > 0.5]
    assert failed and all(t.status == "failed" and "non-finite" in t.error for t in failed)
    assert result.best.config["q"] <= 0.5


def test_report_without_scheduler_only_records():
    result = run(None, num_trials=3)
    assert all(t.status == "completed" and t.resource == 27.0 for t in result.trials)


def test_a_scheduler_needs_an_objective_that_reports():
    with pytest.raises(ValueError, match="report"):
        jhpo.tune(lambda c: c["q"], SPACE, num_trials=2, scheduler="asha")
    with pytest.raises(ValueError, match="scheduler='fifo'"):
        jhpo.tune(learning_curve, SPACE, num_trials=2, scheduler="fifo")


# ----------------------------------------------------------------------------- several objectives

SPACE_2D = {"q": jhpo.uniform(0.0, 1.0), "r": jhpo.uniform(0.0, 1.0)}


def two_curves(config, report):
    """Loss falls towards q and score rises towards -r: two objectives in tension only
    through the configuration, so ranks at early epochs are those at the last one."""
    metrics = {}
    for epoch in range(1, 10):
        metrics = {"loss": config["q"] + 1.0 / epoch, "score": -config["r"] - 1.0 / epoch}
        report(epoch, metrics)
    return metrics


def run_two(scheduler, run_dir=None, num_trials=20):
    return jhpo.tune(two_curves, SPACE_2D, metric=["loss", "score"], mode=["min", "max"],
                     num_trials=num_trials, seed=0, scheduler=scheduler,
                     scheduler_options=None if scheduler is None else {"max_resource": 9},
                     run_dir=run_dir, progress=False)


def signed_point(config, resource):
    # the objectives at ``resource``, signed so that smaller is better
    return [config["q"] + 1.0 / resource, config["r"] + 1.0 / resource]


@pytest.mark.parametrize("scheduler", ["asha", "hyperband"])
def test_several_objectives_are_judged_by_nondominated_rank(scheduler):
    from tests.schedulers.test_decisions import reference_pareto_ahead

    result = run_two(scheduler)
    assert all(isinstance(t.value, list) and len(t.value) == 2 for t in result.trials)
    stopped = [t for t in result.trials if t.status == "stopped"]
    assert stopped and {t.resource for t in stopped} <= {1.0, 3.0}
    assert sum(t.resource for t in result.trials) < 0.7 * 20 * 9
    if scheduler == "hyperband":
        return  # brackets decide who is compared with whom; the rung check below is ASHA's
    # trials run one after another: at each rung a trial is judged against the earlier
    # trials that reached it, and goes on iff fewer than floor(n / 3) of them rank ahead
    for rung in (1.0, 3.0):
        reached = []
        for trial in result.trials:
            if trial.resource < rung:
                continue
            reached.append(signed_point(trial.config, rung))
            ahead = reference_pareto_ahead(np.asarray(reached, np.float32))[-1]
            goes_on = len(reached) < 3 or ahead < math.floor(len(reached) / 3)
            assert goes_on == (trial.resource > rung)


def test_several_objectives_resume_rebuilds_the_scheduler_state(tmp_path):
    reference = run_two("asha", tmp_path / "reference", num_trials=14)
    run_two("asha", tmp_path / "partial", num_trials=6)
    resumed = run_two("asha", tmp_path / "partial", num_trials=14)
    assert [(t.config, t.status, t.resource) for t in resumed.trials] == [
        (t.config, t.status, t.resource) for t in reference.trials]


def test_median_rule_refuses_several_objectives():
    with pytest.raises(ValueError, match="scheduler='median' judges one objective"):
        run_two("median")
