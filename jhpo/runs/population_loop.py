"""The slot loop of ``tune_population``, with a scheduler or without one.

A fixed number of slots train together, ``interval`` steps at a time. After each interval
every slot is evaluated, a trial that ended is recorded, and the schedule decides:

- no scheduler: nothing is ever stopped. The interval is the whole training, so every
  member starts and ends with its population: the slots are trained from fresh states by
  :func:`jhpo.population.train` (in chunks, grouped by batch size, padded, in blocks of
  steps), recorded together, and refilled with the searcher's next population.
- ``"asha"``, ``"hyperband"``, ``"median"``: a trial that reaches a rung is judged
  against the trials that reached it before (the asynchronous rules of
  :mod:`jhpo.schedulers`, with resources counted in steps). A stopped, finished or
  failed trial frees its slot, and the slot is refilled at once with a new configuration
  from the searcher, so the device stays busy while the run lasts.
- ``"asha"`` with ``scheduler_options={"form": "promotion"}``: ASHA's promotion form. A
  trial trains to its next rung and pauses there (its member state kept on the host, and
  saved with the checkpoints); a freed slot resumes the paused trial that
  :func:`jhpo.schedulers.promotion.promote_next` picks, or else starts a new
  configuration. When nothing is left to run or promote, trials still paused are recorded
  as stopped at their rung.
- ``"pbt"``: members in the bottom quantile copy the state of a top member (an array
  gather inside the compiled program) and explore its hyperparameters. Every copy ends
  the member's current trial and starts a new one whose ``parent_id`` is the donor's
  trial and ``start_resource`` the step of the copy, so the schedule can be replayed.

Decisions use the run's goal: with several metrics ASHA and Hyperband rank by
non-dominated sorting; PBT and the median rule need one. After every interval each
slot's evaluation metrics and ``train_loss`` (the mean of its trial's last tenth of
training losses) are appended to ``run_dir/reports.jsonl`` (resource = steps). The trials
that end at a boundary are told to the searcher together, before it is asked again.

With a scheduler, members outlive an interval: their states stay on the devices between
intervals, and the programs (fresh states, one interval of training, evaluation,
select, gather) compile once for the run, since decisions change which slots hold what,
never an array shape. Slots left empty at the end of a run are frozen and masked rather
than moved to a smaller bucket: it keeps the one shape, at the price of idle arithmetic.

A killed run resumes from a boundary (see :mod:`jhpo.runs.population_checkpoints`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jhpo import multihost
from jhpo import population as pop
from jhpo.callbacks import Callbacks
from jhpo.checkpoint import Checkpoints
from jhpo.goal import Goal
from jhpo.population import PopulationPrograms
from jhpo.progress import progress_bar
from jhpo.runs import population_checkpoints as checkpoints
from jhpo.runs import population_decisions as decisions
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.population_slots import TRAIN_LOSS, LossTail, Paused, Slots, tail_length
from jhpo.runs.directory import RunDirectory
from jhpo.runs.records import FAILED, AskRecord, Result, Trial
from jhpo.runs.schedule import Schedule
from jhpo.runs.shell import POPULATION_IDENTITY_KEYS, make_trial, run_fingerprint
from jhpo.schedulers import promotion
from jhpo.schedulers.driver import SchedulerDriver
from jhpo.searchers.base import next_power_of_two

CHECKPOINT_DIR = "checkpoints"


class SlotRun:
    """The mutable shell of one population run: the slots, the searcher, the scheduler's
    state, the records. ``train_options`` are ``jhpo.population.train``'s
    (``max_batch_size``, ``devices``, ``chunk_size``, ``batch_strategy``): ``fresh`` runs
    (no scheduler) train each interval from fresh states with them; the others keep their
    members in ``carry``, one program over the devices with that batch."""

    def __init__(self, task: pop.Task, optimizer: Optimizer, goal: Goal, schedule: Schedule, *,
                 population_size: int, num_trials: int, steps: int, seed: int, train_options: dict,
                 directory: RunDirectory | None, result: Result, max_member_steps: int | None,
                 callbacks: Callbacks):
        self.task, self.optimizer, self.space, self.goal = task, optimizer, optimizer.space, goal
        self.schedule, self.scheduler = schedule, schedule.name
        self.seed, self.num_trials, self.steps = seed, num_trials, steps
        self.directory, self.result, self.callbacks = directory, result, callbacks
        self.population_size, self.train_options = population_size, train_options
        self.fresh = schedule.name is None
        batch = train_options.get("max_batch_size") or next_power_of_two(int(task.defaults["batch_size"]))
        self.programs = None if self.fresh else PopulationPrograms(
            task, population_size, batch, schedule.interval, train_options.get("devices"))
        size = population_size if self.fresh else self.programs.size
        self.recorded_ids = {t.trial_id for t in result.trials}
        self.slots = Slots.empty(size, self.space.dim)
        self.tail = LossTail.empty(size, tail_length(steps))
        self.scheduling = self.promotions = None
        self.paused: dict[int, Paused] = {}
        if schedule.form == "promotion":
            self.promotions = promotion.init_promotions(len(schedule.scheduler.levels), len(goal.metrics))
        elif schedule.scheduler is not None:
            self.scheduling = SchedulerDriver(schedule.scheduler, seed, len(goal.metrics))
        self.max_member_steps = max_member_steps
        self.clock = multihost.SharedClock()  # process 0's time, for every process's records
        self.now = self.clock.now()  # one time per boundary, for the records made there
        self.member_steps = 0
        self.next_trial_id = 0
        self.started = 0
        self.num_reports = 0  # lines this run has in reports.jsonl
        self.boundary = 0
        self.requeued: list[tuple[int, np.ndarray]] = []  # asked, never recorded: run first
        self.ended: list[Trial] = []  # recorded at this boundary, not yet told
        self.configs: dict[int, dict] = {}  # running trials' configurations, decoded once
        self.carry = self.hp = self.keys = None
        self.on_block = None  # on_block(done, total) while a fresh interval trains
        self.checkpoints = None if directory is None or self.fresh else Checkpoints(
            directory.path / CHECKPOINT_DIR,
            fingerprint=run_fingerprint(result.meta, POPULATION_IDENTITY_KEYS))

    @property
    def running(self) -> bool:
        return bool(self.slots.occupied.any())

    # --- slot filling

    def refill(self) -> None:
        """Start trials in the free slots: first the trials a kill interrupted (alone, as
        the population they were asked in), else ASHA's promotions, else new trials from
        the searcher while trials and budget remain. PBT fills every slot once, at the
        start (it ignores num_trials)."""
        self.tell_ended()
        self.now = self.clock.now()
        free = np.flatnonzero(~self.slots.occupied)
        if self.requeued:
            chosen = free[:len(self.requeued)]
            self._decode([trial_id for trial_id, _ in self.requeued], [row for _, row in self.requeued])
            for slot, (trial_id, row) in zip(chosen, self.requeued):
                self.start_trial(slot, trial_id, np.asarray(row, np.float32), parent=-1, step=0)
            self.requeued = self.requeued[len(chosen):]
            self.load_fresh(chosen)
            return
        if self.promotions is not None:
            free = self._resume_promoted(free)
        if self.scheduler == "pbt":
            count = len(free) if self.carry is None else 0
        elif self.max_member_steps is not None and self.member_steps >= self.max_member_steps:
            count = 0
        else:
            count = min(len(free), self.num_trials - self.started)
        if count <= 0:
            return
        chosen = free[:count]
        first, num_told = self.next_trial_id, self.optimizer.num_told
        rows, _ = self.optimizer.ask_rows(count)
        multihost.check_same(f"the rows of trials {first}..{first + count - 1} asked", rows)
        if self.directory is not None:
            self.directory.append_ask(AskRecord(list(range(first, first + count)),
                                                np.asarray(rows).tolist(), num_told))
        self._decode(range(first, first + count), rows)
        for offset, slot in enumerate(chosen):
            self.start_trial(slot, first + offset, np.asarray(rows[offset]), parent=-1, step=0)
        self.next_trial_id += count
        self.started += count
        self.load_fresh(chosen)

    def _decode(self, trial_ids, rows) -> None:
        """The configurations of new trials, decoded together (one by one costs a few ms each)."""
        self.configs.update(zip(trial_ids, self.space.to_configs(np.asarray(rows, np.float32))))

    def config_of(self, trial_id: int, row: np.ndarray) -> dict:
        if trial_id not in self.configs:
            self.configs[trial_id] = self.space.to_configs(row[None])[0]
        return self.configs[trial_id]

    def start_trial(self, slot, trial_id, row, parent, step) -> None:
        self.slots.trial[slot], self.slots.rows[slot] = trial_id, row
        self.slots.parent[slot], self.slots.start_step[slot] = parent, step
        self.slots.steps[slot], self.slots.started_at[slot] = step, self.now
        self.tail.clear(slot)
        if trial_id not in self.recorded_ids:  # not a trial replayed after a resume
            self.callbacks.trial_start(int(trial_id), self.config_of(trial_id, row))
        if self.scheduling is not None:
            self.scheduling.start(trial_id)
        if self.promotions is not None:
            self.promotions = promotion.admit(self.promotions, trial_id)

    def _resume_promoted(self, free: np.ndarray) -> np.ndarray:
        """Put promoted paused trials back in free slots, as they stood when they paused
        (their keys come from their trial ids, so they train on as if never paused).
        Returns the slots still free."""
        loaded = {}
        for slot in free:
            self.promotions, trial_id = promotion.promote_next(self.promotions, self.schedule.eta)
            if trial_id is None:
                break
            paused = self.paused.pop(trial_id)
            self.slots.trial[slot], self.slots.rows[slot] = trial_id, paused.row
            self.slots.parent[slot], self.slots.start_step[slot] = -1, 0
            self.slots.steps[slot], self.slots.started_at[slot] = paused.steps, paused.started_at
            self.tail.clear(slot)
            loaded[int(slot)] = paused.state
        if loaded:
            size = self.programs.size
            filler = next(iter(loaded.values()))  # any state: the mask leaves other slots alone
            states = jax.tree.map(lambda *leaves: np.stack(leaves),
                                  *[loaded.get(slot, filler) for slot in range(size)])
            mask = np.isin(np.arange(size), list(loaded))
            self.carry = self.programs.select(mask, (states, np.ones(size, bool), np.full(size, -1, np.int32)),
                                              self.carry)
            self.hp, self.keys = self.columns(), self.trial_keys()
        return free[len(loaded):]

    def _hpcolumns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        configs = self.space.to_configs(rows)
        return pop.stack_hparams(self.task, [pop.task_config(self.space, c) for c in configs])

    def trial_keys(self):
        """Each slot's key: its trial's, ``fold_in(key(seed), trial_id)``."""
        return self.programs.put(pop.member_keys(self.seed, np.maximum(self.slots.trial, 0)))

    def columns(self):
        return self.programs.put({k: jnp.asarray(v) for k, v in self._hpcolumns(self.slots.rows).items()})

    def load_fresh(self, chosen) -> None:
        """Fresh member states in the ``chosen`` slots (a fresh run makes them when it trains)."""
        if self.fresh:
            return
        self.hp, self.keys = self.columns(), self.trial_keys()
        fresh = self.programs.init(self.keys, self.hp)
        mask = np.zeros(self.programs.size, bool)
        mask[chosen] = True
        self.carry = fresh if self.carry is None else self.programs.select(mask, fresh, self.carry)
        states, alive, failed_step = self.carry
        self.carry = (states, self.programs.put(alive & jnp.asarray(self.slots.occupied)), failed_step)

    # --- one interval

    def step(self) -> None:
        occupied = self.slots.occupied
        train = self._train_fresh if self.fresh else self._advance
        metrics, alive, failed_step, losses = train(occupied)
        self.slots.steps[occupied] += self.schedule.interval
        self.member_steps += int(occupied.sum()) * self.schedule.interval
        self.tail.extend(losses[occupied], np.flatnonzero(occupied))
        metrics[TRAIN_LOSS] = self.tail.means()
        self.clock.tick()
        self.now = self.clock.now()
        self._report(metrics, occupied)
        objectives = self._objectives(metrics)
        if self.scheduler == "pbt":
            decisions.pbt_boundary(self, metrics, objectives[:, 0], alive, failed_step)
        elif self.promotions is not None:
            decisions.promotion_boundary(self, metrics, objectives, alive, failed_step)
        else:
            decisions.judge(self, metrics, objectives, alive, failed_step)
        self.tell_ended()
        self.boundary += 1

    def _advance(self, occupied):
        """One interval of the members on the devices: (metrics, alive, failed_step,
        losses), one row per slot, on the host."""
        self.carry, losses = self.programs.advance(self.carry, self.hp, self.keys,
                                                   np.asarray(self.slots.steps, np.int32))
        metrics = self.programs.evaluate(self.carry[0], self.hp)
        alive, failed_step, losses = self.programs.fetch((self.carry[1], self.carry[2], losses))
        return metrics, alive, failed_step, losses

    def _train_fresh(self, occupied):
        """The whole training of the occupied slots, from fresh states, by
        ``jhpo.population.train``; the same four arrays as ``_advance``."""
        held = np.flatnonzero(occupied)
        outcome = pop.train(self.task, self._hpcolumns(self.slots.rows[held]),
                            pop.member_keys(self.seed, self.slots.trial[held]), self.steps,
                            block_steps=pop.steps_per_block(self.steps), on_block=self.on_block,
                            pad_to=self.population_size, **self.train_options)
        size = len(occupied)

        def per_slot(values, fill):
            full = np.full((size,) + values.shape[1:], fill, values.dtype)
            full[held] = values
            return full

        def empty_as(values):  # what an empty slot reports: never read, but of the values' kind
            return np.nan if np.issubdtype(values.dtype, np.inexact) else 0

        metrics = {name: per_slot(np.asarray(values), empty_as(np.asarray(values)))
                   for name, values in outcome.metrics.items()}
        return (metrics, per_slot(~outcome.failed, False), per_slot(outcome.failed_step, -1),
                per_slot(outcome.losses, np.nan))

    def _report(self, metrics, occupied) -> None:
        """Each running trial's metrics at its current step: its learning curve."""
        for slot in np.flatnonzero(occupied):
            trial_id, steps = int(self.slots.trial[slot]), float(self.slots.steps[slot])
            values = {k: v[slot].item() for k, v in metrics.items()}
            if self.directory is not None:
                self.directory.append_report(trial_id, steps, values)
                self.num_reports += 1
            if trial_id not in self.recorded_ids:
                self.callbacks.report(trial_id, steps, values)

    def _objectives(self, metrics) -> np.ndarray:
        """(slots, objectives): the goal's metrics, signed so that smaller is better."""
        missing = [m for m in self.goal.metrics + self.goal.constraints if m not in metrics]
        if missing:
            raise ValueError(f"metric {missing[0]!r} is not among the metrics task "
                             f"{self.task.name!r} evaluates: {sorted(metrics)}")
        return self.goal.signs * np.stack([metrics[m] for m in self.goal.metrics], axis=1)

    # --- records

    def diverged(self, slot, metrics, failed_step) -> None:
        """Record the trial in ``slot`` failed at the first step its loss or state was not finite."""
        step = int(failed_step[slot])
        self.record(int(self.slots.trial[slot]), self.slots.rows[slot], {"failed_step": step}, FAILED,
                     f"training diverged: non-finite loss or parameters at step {step}",
                     float(self.slots.started_at[slot]), step, int(self.slots.parent[slot]),
                     int(self.slots.start_step[slot]))
        self.slots.trial[slot] = -1

    def finish(self, slot, metrics, status, error) -> None:
        """Record the trial in ``slot`` with its metrics of this interval; free the slot.
        (A non-finite objective makes it failed; see ``make_trial``.)"""
        self.record(int(self.slots.trial[slot]), self.slots.rows[slot],
                     {k: v[slot].item() for k, v in metrics.items()}, status, error,
                     float(self.slots.started_at[slot]), int(self.slots.steps[slot]),
                     int(self.slots.parent[slot]), int(self.slots.start_step[slot]))
        self.slots.trial[slot] = -1

    def record(self, trial_id, row, values, status, error, started_at, steps, parent,
                start_step) -> None:
        config = self.config_of(trial_id, row)
        del self.configs[trial_id]  # the trial ended
        self.ended.append(make_trial(
            self.goal, trial_id=trial_id, row=row, config=config,
            seed=self.seed, status=status, metrics=values, error=error, start_time=started_at,
            end_time=self.now, resource=float(steps),
            parent_id=None if parent < 0 else parent, start_resource=float(start_step)))

    def tell_ended(self) -> None:
        """Tell the searcher the trials recorded since it was last told, together (as a
        resume replays them), then write and announce those not recorded before."""
        if not self.ended:
            return
        ended, self.ended = self.ended, []
        self.optimizer.tell_trials(ended)
        for trial in ended:
            self.result.trials.append(trial)
            if trial.trial_id not in self.recorded_ids:
                if self.directory is not None:
                    self.directory.append(trial)
                self.callbacks.trial_end(trial)
            self.recorded_ids.add(trial.trial_id)


def run_population(task: pop.Task, optimizer: Optimizer, goal: Goal, schedule: Schedule, *,
                   population_size: int, num_trials: int, steps: int, seed: int, train_options: dict,
                   directory: RunDirectory | None, result: Result, progress: bool,
                   max_member_steps: int | None = None,
                   callbacks: Callbacks | None = None) -> SlotRun:
    """The loop behind ``tune_population``: ``result`` gets the trials as they are
    recorded. With ``max_member_steps`` no new trial starts once that many member-steps
    were trained. Returns the run (its ``programs`` and counters)."""
    if schedule.name == "pbt" and goal.is_multiobjective:
        raise ValueError(f"scheduler='pbt' ranks members by one fitness, got metric="
                         f"{list(goal.metrics)!r}; give a single metric, or use 'asha' or "
                         "'hyperband' (non-dominated rank)")
    run = SlotRun(task, optimizer, goal, schedule, population_size=population_size,
                  num_trials=num_trials, steps=steps, seed=seed, train_options=train_options,
                  directory=directory, result=result,
                  max_member_steps=max_member_steps, callbacks=callbacks or Callbacks([]))
    checkpoints.resume(run)
    pbt = schedule.name == "pbt"
    desc = task.name if schedule.name is None else f"{task.name} {schedule.name}"
    with progress_bar(total=run.slots.trial.size if pbt else num_trials, enabled=progress,
                      initial=0 if pbt else len(result.trials), desc=desc, unit="trial") as bar:

        def show_steps(done, total):
            bar.set_postfix_str(f"population step {done}/{total}, {result.summary_line()}")

        run.on_block = show_steps
        while run.running:
            recorded_before = len(result.trials)
            run.step()
            checkpoints.after_interval(run)
            bar.update(0 if pbt else len(result.trials) - recorded_before)
            bar.set_failures(len(result.failed))
            bar.set_postfix_str(f"interval {run.boundary}, {result.summary_line()}")
    return run
