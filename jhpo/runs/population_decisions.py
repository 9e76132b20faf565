"""The decisions at a boundary of a population run, one function per kind of schedule.

Each takes the ``SlotRun`` (see :mod:`jhpo.runs.population_loop`) and what the interval
produced, one row per slot: the evaluation ``metrics`` (with ``train_loss``), the
``objectives`` signed to be minimised, whether each member is ``alive`` (its loss and
state stayed finite) and the step it stopped being so (``failed_step``). They end trials,
start new ones and change which slot holds what, never an array's shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jhpo import schedulers as schedulers_module
from jhpo.runs.population_slots import Paused
from jhpo.runs.records import COMPLETED, STOPPED
from jhpo.schedulers import promotion


def judge(run, metrics, objectives, alive, failed_step) -> None:
    """Trials that diverged or completed end; the scheduler (if any) judges the others
    at their rungs. A non-finite evaluation ends a trial, recorded failed."""
    for slot in np.flatnonzero(run.slots.occupied):
        trial_id, steps = int(run.slots.trial[slot]), int(run.slots.steps[slot])
        values = objectives[slot]
        if not alive[slot]:
            run.diverged(slot, metrics, failed_step)
        elif not np.isfinite(values).all():
            run.finish(slot, metrics, COMPLETED if steps >= run.steps else STOPPED, None)
        elif steps >= run.steps:
            if run.scheduling is not None:
                run.scheduling.goes_on(trial_id, steps, values)
            run.finish(slot, metrics, COMPLETED, None)
        elif run.scheduling is not None and not run.scheduling.goes_on(trial_id, steps, values):
            run.finish(slot, metrics, STOPPED, f"stopped by {run.scheduler} at step {steps}")
    run.refill()


def promotion_boundary(run, metrics, objectives, alive, failed_step) -> None:
    """Trials that reached their rung record their values there and pause (or, at
    the last rung, complete); freed slots are refilled; and once nothing runs or can
    be promoted, the trials still paused are recorded as stopped."""
    pausing = []
    levels = run.schedule.scheduler.levels
    for slot in np.flatnonzero(run.slots.occupied):
        trial_id, steps = int(run.slots.trial[slot]), int(run.slots.steps[slot])
        if not alive[slot] or not np.isfinite(objectives[slot]).all():
            run.promotions = promotion.drop(run.promotions, trial_id)
            if alive[slot]:
                run.finish(slot, metrics, STOPPED, None)
            else:
                run.diverged(slot, metrics, failed_step)
        elif steps >= levels[promotion.target_rung(run.promotions, trial_id)]:
            run.promotions, rung = promotion.record(run.promotions, trial_id, objectives[slot])
            if rung == len(levels) - 1:
                run.finish(slot, metrics, COMPLETED, None)
            else:
                pausing.append(slot)
    if pausing:
        states = run.programs.fetch(run.carry[0], members=pausing)
        for index, slot in enumerate(pausing):
            run.paused[int(run.slots.trial[slot])] = Paused(
                jax.tree.map(lambda leaf, index=index: np.array(leaf[index]), states),
                run.slots.rows[slot].copy(), int(run.slots.steps[slot]),
                float(run.slots.started_at[slot]), {k: v[slot].item() for k, v in metrics.items()})
            run.slots.trial[slot] = -1
    run.refill()
    if not run.running:
        for trial_id in sorted(run.paused):
            paused = run.paused.pop(trial_id)
            run.record(trial_id, paused.row, paused.metrics, STOPPED,
                       f"not promoted past step {paused.steps} by asha", paused.started_at,
                       paused.steps, -1, 0)


def pbt_boundary(run, metrics, fitness, alive, failed_step) -> None:
    """At the last step every member completes; before it, the bottom ``quantile``
    copies a top member's state (ending its trial, starting a child trial) and explores
    the donor's hyperparameters."""
    occupied = run.slots.occupied
    values = np.where(alive & occupied, fitness, np.nan).astype(np.float32)
    if int(run.slots.steps.max()) >= run.steps:
        for slot in np.flatnonzero(occupied):
            if alive[slot]:
                run.finish(slot, metrics, COMPLETED, None)
            else:
                run.diverged(slot, metrics, failed_step)
        return
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(run.seed), 2), run.boundary)
    parents = np.asarray(schedulers_module.pbt_parents(
        jnp.asarray(values), jnp.asarray(occupied), key, run.schedule.quantile))
    copying = np.flatnonzero(parents != np.arange(len(parents)))
    if len(copying) == 0:
        return
    explored = np.asarray(schedulers_module.pbt_explore(
        run.space, jnp.asarray(run.slots.rows[parents]), jax.random.fold_in(key, 1),
        resample_probability=run.schedule.resample_probability))
    donors = run.slots.copy()
    for slot in copying:
        if alive[slot]:
            run.finish(slot, metrics, STOPPED, f"replaced by PBT at step {run.slots.steps[slot]}")
        else:
            run.diverged(slot, metrics, failed_step)
        donor = parents[slot]
        run.start_trial(slot, run.next_trial_id, explored[slot],
                        parent=int(donors.trial[donor]), step=int(donors.steps[donor]))
        run.next_trial_id += 1
    run.carry = run.programs.gather(run.carry, parents)
    states, alive_after, failed_after = run.carry
    # a copied member starts healthy from its donor's state
    run.carry = (states, alive_after, run.programs.put(jnp.where(
        jnp.asarray(parents != np.arange(len(parents))), -1, failed_after)))
    run.hp, run.keys = run.columns(), run.trial_keys()
