"""How a population run resumes: from a boundary of its slot loop.

A run is deterministic given its seed and devices, so it resumes from a boundary (the
moment after an interval's decisions and refills): the slots, the members' states and
the scheduler's state as they stood there, and the searcher rebuilt by replaying the asks
made by then between the tells of the trials recorded by then. The intervals after the
boundary are run again; the trials they record again are identical and not written
twice, and the reports after the boundary are cut from ``reports.jsonl``, since they are
written again.

With a scheduler, members outlive an interval, so the boundary is an orbax checkpoint
(:class:`jhpo.checkpoint.Checkpoints` in ``run_dir/checkpoints``): parameters, optimizer
states, hyperparameters, keys, step counts, loss tails, scheduler state and paused trials,
written after every ``checkpoint_every`` intervals. Without one a member lives one
interval, so at the boundary before each ask nothing but the records is left: the run
resumes from the newest such boundary, its records, with the trials that were asked and
never recorded back in the slots, alone, as the population they were asked in.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jhpo.runs.population_slots import LossTail, Slots, pack_paused, unpack_paused
from jhpo.runs.shell import resume as resume_from_records
from jhpo.schedulers import init_state, promotion
from jhpo.searchers.base import capacity_for


def resume(run) -> None:
    """Start ``run`` (a ``SlotRun``): from its newest boundary when its directory has one,
    then fill its free slots."""
    if run.fresh:
        _restore_records(run)
        run.refill()
        return
    stored = list(run.result.trials)
    if _restore_checkpoint(run, stored):
        run.refill()  # a finished run given more trials goes on
        return
    if stored:
        raise ValueError(f"run_dir {str(run.directory.path)!r} has trials but no checkpoint to "
                         "resume from")
    run.refill()
    save(run)


def after_interval(run) -> None:
    """Checkpoint every ``checkpoint_every`` intervals, and after the last."""
    if run.boundary % run.schedule.checkpoint_every == 0 or not run.running:
        save(run)


def _restore_records(run) -> None:
    """The boundary before the last ask, from the records: the searcher replayed, the
    trials asked and never recorded queued for the free slots."""
    resumed = resume_from_records(run.optimizer, run.directory)
    run.result.trials = list(resumed.trials)
    run.recorded_ids = {t.trial_id for t in resumed.trials}
    run.requeued = list(resumed.in_flight)
    run.next_trial_id = resumed.next_trial_id
    run.started = len(resumed.trials) + len(resumed.in_flight)
    if run.directory is not None:  # the interrupted trials report again
        run.directory.keep_reports(lambda index, report: report.get("trial_id") in run.recorded_ids)


def _tree(run, paused_capacity: int | None = None) -> dict:
    """Everything a checkpoint holds in arrays; the paused trials' states stacked in a
    buffer of ``paused_capacity`` (default: enough for those paused now)."""
    tree = {"carry": run.carry, "hp": run.hp, "keys": run.keys, "slots": run.slots._asdict(),
            "loss_tail": run.tail.losses}
    if run.scheduling is not None:
        tree["scheduler"] = run.scheduling.state._asdict()
    if run.promotions is not None:
        tree["promotions"] = run.promotions._asdict()
        tree["paused"] = pack_paused(run.paused, run.carry[0], run.space.dim, paused_capacity)
    return tree


def save(run) -> None:
    if run.checkpoints is None:
        return
    record = {"boundary": run.boundary, "started": run.started, "member_steps": run.member_steps,
              "num_asked": run.optimizer.num_asked, "next_trial_id": run.next_trial_id,
              "num_recorded": len(run.result.trials), "num_reports": run.num_reports,
              "next_level": {} if run.scheduling is None else
              {str(k): v for k, v in run.scheduling.next_level.items()}}
    if run.scheduling is not None:
        record["scheduler_capacity"] = int(run.scheduling.state.values.shape[0])
    if run.promotions is not None:
        record["paused_metrics"] = {str(k): p.metrics for k, p in run.paused.items()}
        record["paused_capacity"] = capacity_for(len(run.paused))
        record["promotion_capacity"] = int(run.promotions.target.shape[0])
    run.checkpoints.save(run.boundary, _tree(run), record)


def _restore_checkpoint(run, stored_trials) -> bool:
    """Continue from the newest checkpoint, if any. Returns whether one was found."""
    if run.checkpoints is None or run.checkpoints.latest_step() is None:
        return False
    run.load_fresh(np.zeros(0, int))  # arrays of the right shapes to restore into
    tree, record = run.checkpoints.restore(lambda record: _template(run, record))
    run.slots = Slots(**{k: np.asarray(v) for k, v in tree["slots"].items()})
    run.tail = LossTail(np.array(tree["loss_tail"], np.float32))
    run.carry = run.programs.put(tree["carry"])
    run.hp, run.keys = run.programs.put(tree["hp"]), run.programs.put(tree["keys"])
    if run.scheduling is not None:
        run.scheduling.state = type(run.scheduling.state)(**tree["scheduler"])
        run.scheduling.next_level = {int(k): v for k, v in record["next_level"].items()}
    run.boundary, run.started = record["boundary"], record["started"]
    run.member_steps = record["member_steps"]
    run.num_reports = record["num_reports"]
    run.directory.keep_reports(lambda index, report: index < run.num_reports)
    if run.promotions is not None:
        run.promotions = promotion.PromotionState(
            **{k: jnp.asarray(v) for k, v in tree["promotions"].items()})
        run.paused = unpack_paused(tree["paused"], record["paused_metrics"])
    run.next_trial_id = record["next_trial_id"]
    _rebuild_searcher(run, stored_trials[: record["num_recorded"]], record["num_asked"])
    return True


def _template(run, record: dict) -> dict:
    """The shapes of the arrays a checkpoint with ``record`` holds."""
    tree = _tree(run, record.get("paused_capacity"))
    if run.scheduling is not None:
        values = run.scheduling.state.values
        tree["scheduler"] = init_state(values.shape[1], record["scheduler_capacity"],
                                       values.shape[2])._asdict()
    if run.promotions is not None:
        capacity = record["promotion_capacity"]
        tree["promotions"] = promotion.PromotionState(
            values=np.zeros((capacity,) + run.promotions.values.shape[1:], np.float32),
            promoted=np.zeros((capacity,) + run.promotions.promoted.shape[1:], bool),
            target=np.zeros(capacity, np.int32))._asdict()
    return tree


def _rebuild_searcher(run, told, num_asked: int) -> None:
    """The searcher as it stood at the checkpoint: the fresh optimizer replays the asks
    made by then between the tells of the trials recorded by then (the running and
    paused trials' rows are pending again, as the searcher's own ask left them). Asks
    recorded after the checkpoint are dropped: the intervals since are run again and ask
    them again."""
    asks, asked = [], 0
    for ask in run.directory.read_asks():
        asked += len(ask.trial_ids)
        if asked > num_asked:
            break
        asks.append(ask)
    run.directory.keep_asks(len(asks))
    run.optimizer.replay(asks, told)
    run.result.trials = list(told)
