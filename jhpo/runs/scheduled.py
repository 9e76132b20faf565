"""Scheduled population runs: ASHA, Hyperband, median stopping and PBT.

A fixed number of slots train together as one compiled program, ``interval`` steps at a
time. After each interval every slot is evaluated and the scheduler decides:

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
slot's evaluation metrics are appended to ``run_dir/reports.jsonl`` (resource = steps).

The programs (fresh states, one training interval, evaluation, select, gather) compile
once for the run: decisions change which slots hold what, never an array shape. Slots
left empty at the end of a run are frozen and masked rather than moved to a smaller
bucket: it keeps the one shape, at the price of idle arithmetic in the last intervals.

With ``run_dir``, the whole population (parameters, optimizer states, hyperparameters,
keys, step counts, scheduler state, paused trials) is checkpointed with orbax after every interval (or
every ``scheduler_options["checkpoint_every"]`` intervals, for short intervals). A
resumed run restarts from the newest checkpoint; trials recorded after it are produced
again identically (on the same devices and seed) and are not written twice, and the
reports file is cut back to the reports written up to the checkpoint, since the
intervals after it are reported again.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jhpo import multihost
from jhpo import population as pop
from jhpo import schedulers as schedulers_module
from jhpo.callbacks import Callbacks
from jhpo.checkpoint import Checkpoints
from jhpo.goal import Goal
from jhpo.population import PopulationPrograms
from jhpo.progress import progress_bar
from jhpo.runs.directory import RunDirectory
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.records import COMPLETED, FAILED, STOPPED, AskRecord, Result, Trial
from jhpo.runs.schedule import Schedule
from jhpo.runs.shell import POPULATION_IDENTITY_KEYS, make_trial, run_fingerprint
from jhpo.schedulers import init_state, promotion
from jhpo.schedulers.driver import SchedulerDriver
from jhpo.searchers.base import capacity_for
from jhpo.space import Space

CHECKPOINT_DIR = "checkpoints"


# ----------------------------------------------------------------------------- slots


class Slots(NamedTuple):
    """What each slot holds, on the host. ``trial`` is -1 for an empty slot."""

    trial: np.ndarray  # (S,) int
    steps: np.ndarray  # (S,) int, steps the slot's state has trained
    rows: np.ndarray  # (S, dim) float32, the slot's configuration
    parent: np.ndarray  # (S,) int, PBT donor trial or -1
    start_step: np.ndarray  # (S,) int, step at which the slot's trial began
    started_at: np.ndarray  # (S,) float, wall-clock start of the slot's trial

    @classmethod
    def empty(cls, slots: int, dim: int) -> Slots:
        return cls(np.full(slots, -1), np.zeros(slots, np.int64), np.zeros((slots, dim), np.float32),
                   np.full(slots, -1), np.zeros(slots, np.int64), np.zeros(slots))

    def copy(self) -> Slots:
        return Slots(*(np.array(field) for field in self))


def _hp_columns(task: pop.Task, space: Space, rows: np.ndarray) -> dict[str, np.ndarray]:
    return pop.stack_hparams(task, [pop.task_config(space, c) for c in space.to_configs(rows)])


# ----------------------------------------------------------------------------- promotions


class Paused(NamedTuple):
    """A trial waiting at a rung to be promoted: its member state on the host and what it
    reported there."""

    state: Any
    row: np.ndarray
    steps: int
    started_at: float
    metrics: dict[str, float]


# ----------------------------------------------------------------------------- the run


class _Run:
    """The mutable shell of one scheduled population run."""

    def __init__(self, task, space, optimizer: Optimizer, goal: Goal, programs: PopulationPrograms,
                 schedule: Schedule, seed: int, num_trials: int, steps: int,
                 directory: RunDirectory | None, result: Result, max_member_steps: int | None,
                 callbacks: Callbacks):
        self.task, self.space, self.optimizer, self.goal = task, space, optimizer, goal
        self.programs, self.schedule, self.scheduler = programs, schedule, schedule.name
        self.seed, self.num_trials, self.steps = seed, num_trials, steps
        self.directory, self.result, self.callbacks = directory, result, callbacks
        self.recorded_ids = {t.trial_id for t in result.trials}
        self.slots = Slots.empty(programs.size, space.dim)
        self.scheduling = self.promotions = None
        self.paused: dict[int, Paused] = {}
        if schedule.form == "promotion":
            self.promotions = promotion.init_promotions(len(schedule.scheduler.levels),
                                                        len(goal.metrics))
        elif schedule.scheduler is not None:
            self.scheduling = SchedulerDriver(schedule.scheduler, seed, len(goal.metrics))
        self.max_member_steps = max_member_steps
        self.clock = multihost.SharedClock()  # process 0's time, for every process's records
        self.member_steps = 0
        self.next_trial_id = 0
        self.num_reports = 0  # lines this run has in reports.jsonl
        self.boundary = 0
        self.started = 0
        self.carry = None
        self.hp = None
        self.keys = None
        self.checkpoints = None if directory is None else Checkpoints(
            directory.path / CHECKPOINT_DIR,
            fingerprint=run_fingerprint(result.meta, POPULATION_IDENTITY_KEYS))

    # --- slot filling

    def refill(self) -> None:
        """Start new trials in the free slots. PBT fills every slot once, at the start
        (it ignores num_trials); the others start trials while trials and budget remain,
        and ASHA's promotion form first resumes the paused trials it promotes."""
        free = np.flatnonzero(self.slots.trial < 0)
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
        for offset, slot in enumerate(chosen):
            self._start_trial(slot, first + offset, np.asarray(rows[offset]), parent=-1, step=0)
        self.next_trial_id += count
        self.started += count
        self._load_fresh(chosen)

    def _start_trial(self, slot, trial_id, row, parent, step) -> None:
        self.slots.trial[slot], self.slots.rows[slot] = trial_id, row
        self.slots.parent[slot], self.slots.start_step[slot] = parent, step
        self.slots.steps[slot], self.slots.started_at[slot] = step, self.clock.now()
        if trial_id not in self.recorded_ids:  # not a trial replayed after a resume
            self.callbacks.trial_start(int(trial_id), self.space.to_configs(row[None])[0])
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
            loaded[int(slot)] = paused.state
        if loaded:
            size = self.programs.size
            filler = next(iter(loaded.values()))  # any state: the mask leaves other slots alone
            states = jax.tree.map(lambda *leaves: np.stack(leaves),
                                  *[loaded.get(slot, filler) for slot in range(size)])
            mask = np.isin(np.arange(size), list(loaded))
            self.carry = self._merge(mask, (states, np.ones(size, bool), np.full(size, -1, np.int32)))
            self.hp, self.keys = self._columns(), self._trial_keys()
        return free[len(loaded):]

    def _trial_keys(self):
        """Each slot's key: the trial's, ``fold_in(key(seed), trial_id)``, as in
        ``tune_population`` without a scheduler."""
        return self.programs.put(pop.member_keys(self.seed, np.maximum(self.slots.trial, 0)))

    def _columns(self):
        return self.programs.put({k: jnp.asarray(v) for k, v in
                                  _hp_columns(self.task, self.space, self.slots.rows).items()})

    def _load_fresh(self, chosen) -> None:
        self.hp, self.keys = self._columns(), self._trial_keys()
        fresh = self.programs.init(self.keys, self.hp)
        mask = np.zeros(self.programs.size, bool)
        mask[chosen] = True
        self.carry = fresh if self.carry is None else self._merge(mask, fresh)
        self._freeze_empty()

    def _merge(self, mask: np.ndarray, new):
        """The carry with ``new`` in the ``mask`` slots."""
        return self.programs.select(mask, new, self.carry)

    def _freeze_empty(self) -> None:
        states, alive, failed_step = self.carry
        occupied = jnp.asarray(self.slots.trial >= 0)
        self.carry = (states, self.programs.put(alive & occupied), failed_step)

    # --- one interval

    def step(self) -> None:
        occupied = self.slots.trial >= 0
        self.carry, _ = self.programs.advance(self.carry, self.hp, self.keys,
                                              self.programs.put(jnp.asarray(self.slots.steps, jnp.int32)))
        self.slots.steps[occupied] += self.programs.interval
        self.member_steps += int(occupied.sum()) * self.programs.interval
        metrics = self.programs.evaluate(self.carry[0], self.hp)
        self.clock.tick()
        self._report(metrics, occupied)
        objectives = self._objectives(metrics)
        alive = self.programs.fetch(self.carry[1])
        if self.scheduler == "pbt":
            self._pbt_boundary(metrics, objectives[:, 0], alive)
        elif self.promotions is not None:
            self._promotion_boundary(metrics, objectives, alive)
        else:
            self._judge(metrics, objectives, alive)
        self.boundary += 1

    def _report(self, metrics, occupied) -> None:
        """Each running trial's metrics at its current step: its learning curve."""
        for slot in np.flatnonzero(occupied):
            trial_id, steps = int(self.slots.trial[slot]), float(self.slots.steps[slot])
            values = {k: float(v[slot]) for k, v in metrics.items()}
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

    def _judge(self, metrics, objectives, alive) -> None:
        for slot in np.flatnonzero(self.slots.trial >= 0):
            trial_id, steps = int(self.slots.trial[slot]), int(self.slots.steps[slot])
            values = objectives[slot]
            if not alive[slot] or not np.isfinite(values).all():
                self._finish(slot, metrics, FAILED, "training diverged: non-finite loss or parameters")
            elif steps >= self.steps:
                self.scheduling.goes_on(trial_id, steps, values)
                self._finish(slot, metrics, COMPLETED, None)
            elif not self.scheduling.goes_on(trial_id, steps, values):
                self._finish(slot, metrics, STOPPED, f"stopped by {self.scheduler} at step {steps}")
        self.refill()

    def _promotion_boundary(self, metrics, objectives, alive) -> None:
        """Trials that reached their rung record their values there and pause (or, at
        the last rung, complete); freed slots are refilled; and once nothing runs or can
        be promoted, the trials still paused are recorded as stopped."""
        pausing = []
        for slot in np.flatnonzero(self.slots.trial >= 0):
            trial_id, steps = int(self.slots.trial[slot]), int(self.slots.steps[slot])
            levels = self.schedule.scheduler.levels
            if not alive[slot] or not np.isfinite(objectives[slot]).all():
                self.promotions = promotion.drop(self.promotions, trial_id)
                self._finish(slot, metrics, FAILED, "training diverged: non-finite loss or parameters")
            elif steps >= levels[promotion.target_rung(self.promotions, trial_id)]:
                self.promotions, rung = promotion.record(self.promotions, trial_id, objectives[slot])
                if rung == len(levels) - 1:
                    self._finish(slot, metrics, COMPLETED, None)
                else:
                    pausing.append(slot)
        if pausing:
            states = self.programs.fetch(self.carry[0], members=pausing)
            for index, slot in enumerate(pausing):
                self.paused[int(self.slots.trial[slot])] = Paused(
                    jax.tree.map(lambda leaf, index=index: np.array(leaf[index]), states),
                    self.slots.rows[slot].copy(), int(self.slots.steps[slot]),
                    float(self.slots.started_at[slot]), {k: float(v[slot]) for k, v in metrics.items()})
                self.slots.trial[slot] = -1
        self.refill()
        if not self.running:
            for trial_id in sorted(self.paused):
                paused = self.paused.pop(trial_id)
                self._record(trial_id, paused.row, paused.metrics, STOPPED,
                             f"not promoted past step {paused.steps} by asha", paused.started_at,
                             paused.steps, -1, 0)

    def _pbt_boundary(self, metrics, fitness, alive) -> None:
        occupied = self.slots.trial >= 0
        values = np.where(alive & occupied, fitness, np.nan).astype(np.float32)
        if int(self.slots.steps.max()) >= self.steps:
            for slot in np.flatnonzero(occupied):
                failed = not alive[slot] or not math.isfinite(values[slot])
                self._finish(slot, metrics, FAILED if failed else COMPLETED,
                             "training diverged: non-finite loss or parameters" if failed else None)
            return
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(self.seed), 2), self.boundary)
        parents = np.asarray(schedulers_module.pbt_parents(
            jnp.asarray(values), jnp.asarray(occupied), key, self.schedule.quantile))
        copying = np.flatnonzero(parents != np.arange(len(parents)))
        if len(copying) == 0:
            return
        explored = np.asarray(schedulers_module.pbt_explore(
            self.space, jnp.asarray(self.slots.rows[parents]), jax.random.fold_in(key, 1),
            resample_probability=self.schedule.resample_probability))
        donors = self.slots.copy()
        for slot in copying:
            failed = not alive[slot] or math.isnan(values[slot])
            self._finish(slot, metrics, FAILED if failed else STOPPED,
                         "training diverged" if failed else f"replaced by PBT at step {self.slots.steps[slot]}")
            donor = parents[slot]
            self._start_trial(slot, self.next_trial_id, explored[slot],
                              parent=int(donors.trial[donor]), step=int(donors.steps[donor]))
            self.next_trial_id += 1
        self.carry = self.programs.gather(self.carry, parents)
        states, alive_after, failed_step = self.carry
        # a copied member starts healthy from its donor's state
        self.carry = (states, alive_after, self.programs.put(jnp.where(
            jnp.asarray(parents != np.arange(len(parents))), -1, failed_step)))
        self.hp, self.keys = self._columns(), self._trial_keys()

    def _finish(self, slot, metrics, status, error) -> None:
        """Record the trial in ``slot`` with its metrics of this interval; free the slot."""
        values = {k: float(v[slot]) for k, v in metrics.items()} if status != FAILED else {}
        self._record(int(self.slots.trial[slot]), self.slots.rows[slot], values, status, error,
                     float(self.slots.started_at[slot]), int(self.slots.steps[slot]),
                     int(self.slots.parent[slot]), int(self.slots.start_step[slot]))
        self.slots.trial[slot] = -1

    def _record(self, trial_id, row, values, status, error, started_at, steps, parent,
                start_step) -> None:
        trial = make_trial(
            self.goal, trial_id=trial_id, row=row, config=self.space.to_configs(row[None])[0],
            seed=self.seed, status=status, metrics=values, error=error, start_time=started_at,
            end_time=self.clock.now(), resource=float(steps),
            parent_id=None if parent < 0 else parent, start_resource=float(start_step))
        self.optimizer.tell_rows(row[None], [self.optimizer.told_row(trial)])
        self.result.trials.append(trial)
        if trial_id not in self.recorded_ids:
            if self.directory is not None:
                self.directory.append(trial)
            self.callbacks.trial_end(trial)
        self.recorded_ids.add(trial_id)

    @property
    def running(self) -> bool:
        return bool((self.slots.trial >= 0).any())

    # --- checkpoints

    def _tree(self, paused_capacity: int | None = None):
        """Everything a checkpoint holds in arrays; the paused trials' states stacked in
        a buffer of ``paused_capacity`` (default: enough for those paused now)."""
        tree = {"carry": self.carry, "hp": self.hp, "keys": self.keys, "slots": self.slots._asdict()}
        if self.scheduling is not None:
            tree["scheduler"] = self.scheduling.state._asdict()
        if self.promotions is not None:
            tree["promotions"] = self.promotions._asdict()
            tree["paused"] = self._paused_buffer(paused_capacity)
        return tree

    def _paused_buffer(self, capacity: int | None) -> dict:
        """The paused trials in fixed-shape arrays, ids first (-1 pads)."""
        ids = sorted(self.paused)
        capacity = capacity_for(len(ids)) if capacity is None else capacity
        member = jax.tree.map(lambda leaf: np.zeros(leaf.shape[1:], leaf.dtype), self.carry[0])
        states = [self.paused[i].state for i in ids] + [member] * (capacity - len(ids))
        return {"trial": np.array(ids + [-1] * (capacity - len(ids)), np.int64),
                "state": jax.tree.map(lambda *leaves: np.stack(leaves), *states),
                "row": np.stack([self.paused[i].row for i in ids]
                                + [np.zeros(self.space.dim, np.float32)] * (capacity - len(ids))),
                "steps": np.array([self.paused[i].steps for i in ids] + [0] * (capacity - len(ids))),
                "started_at": np.array([self.paused[i].started_at for i in ids]
                                       + [0.0] * (capacity - len(ids)))}

    def _load_paused(self, buffer: dict, metrics: dict) -> None:
        self.paused = {}
        for index, trial_id in enumerate(np.asarray(buffer["trial"]).tolist()):
            if trial_id >= 0:
                self.paused[trial_id] = Paused(
                    jax.tree.map(lambda leaf, index=index: np.asarray(leaf[index]), buffer["state"]),
                    np.asarray(buffer["row"][index], np.float32), int(buffer["steps"][index]),
                    float(buffer["started_at"][index]), metrics[str(trial_id)])

    def save(self) -> None:
        if self.checkpoints is None:
            return
        record = {"boundary": self.boundary, "started": self.started, "member_steps": self.member_steps,
                  "num_asked": self.optimizer.num_asked, "next_trial_id": self.next_trial_id,
                  "num_recorded": len(self.result.trials),
                  "num_reports": self.num_reports,
                  "next_level": {} if self.scheduling is None else
                  {str(k): v for k, v in self.scheduling.next_level.items()}}
        if self.scheduling is not None:
            record["scheduler_capacity"] = int(self.scheduling.state.values.shape[0])
        if self.promotions is not None:
            record["paused_metrics"] = {str(k): p.metrics for k, p in self.paused.items()}
            record["paused_capacity"] = capacity_for(len(self.paused))
            record["promotion_capacity"] = int(self.promotions.target.shape[0])
        self.checkpoints.save(self.boundary, self._tree(), record)

    def restore(self, stored_trials: list[Trial]) -> bool:
        """Continue from the newest checkpoint, if any. Returns whether one was found."""
        if self.checkpoints is None or self.checkpoints.latest_step() is None:
            return False
        self._load_fresh(np.zeros(0, int))  # arrays of the right shapes to restore into
        tree, record = self.checkpoints.restore(self._template)
        self.slots = Slots(**{k: np.asarray(v) for k, v in tree["slots"].items()})
        self.carry = self.programs.put(tree["carry"])
        self.hp, self.keys = self.programs.put(tree["hp"]), self.programs.put(tree["keys"])
        if self.scheduling is not None:
            self.scheduling.state = type(self.scheduling.state)(**tree["scheduler"])
            self.scheduling.next_level = {int(k): v for k, v in record["next_level"].items()}
        self.boundary, self.started = record["boundary"], record["started"]
        self.member_steps = record["member_steps"]
        self.num_reports = record["num_reports"]
        self.directory.keep_reports(lambda index, report: index < self.num_reports)
        if self.promotions is not None:
            self.promotions = promotion.PromotionState(
                **{k: jnp.asarray(v) for k, v in tree["promotions"].items()})
            self._load_paused(tree["paused"], record["paused_metrics"])
        self.next_trial_id = record["next_trial_id"]
        self._rebuild_searcher(stored_trials[: record["num_recorded"]], record["num_asked"])
        return True

    def _template(self, record: dict):
        """The shapes of the arrays a checkpoint with ``record`` holds."""
        tree = self._tree(record.get("paused_capacity"))
        if self.scheduling is not None:
            values = self.scheduling.state.values
            tree["scheduler"] = init_state(values.shape[1], record["scheduler_capacity"],
                                           values.shape[2])._asdict()
        if self.promotions is not None:
            capacity = record["promotion_capacity"]
            tree["promotions"] = promotion.PromotionState(
                values=np.zeros((capacity,) + self.promotions.values.shape[1:], np.float32),
                promoted=np.zeros((capacity,) + self.promotions.promoted.shape[1:], bool),
                target=np.zeros(capacity, np.int32))._asdict()
        return tree

    def _rebuild_searcher(self, told: list[Trial], num_asked: int) -> None:
        """The searcher as it stood at the checkpoint: the fresh optimizer replays the
        asks made by then between the tells of the trials recorded by then (the running
        and paused trials' rows are pending again, as the searcher's own ask left them).
        Asks recorded after the checkpoint are dropped: the intervals since are run again
        and ask them again."""
        asks, asked = [], 0
        for ask in self.directory.read_asks():
            asked += len(ask.trial_ids)
            if asked > num_asked:
                break
            asks.append(ask)
        self.directory.keep_asks(len(asks))
        self.optimizer.replay(asks, told)
        self.result.trials = list(told)


def run_scheduled(task: pop.Task, space: Space, optimizer: Optimizer, goal: Goal, *,
                  schedule: Schedule, population_size: int, num_trials: int, steps: int,
                  seed: int, max_batch_size: int, devices, directory: RunDirectory | None,
                  result: Result, progress: bool, max_member_steps: int | None = None,
                  callbacks: Callbacks | None = None) -> tuple[Result, PopulationPrograms]:
    """The scheduled loop behind ``tune_population(..., scheduler=...)``. With
    ``max_member_steps`` no new trial starts once that many member-steps were trained."""
    if schedule.name == "pbt" and goal.is_multiobjective:
        raise ValueError(f"scheduler='pbt' ranks members by one fitness, got metric="
                         f"{list(goal.metrics)!r}; give a single metric, or use 'asha' or "
                         "'hyperband' (non-dominated rank)")
    programs = PopulationPrograms(task, population_size, max_batch_size, schedule.interval, devices)
    run = _Run(task, space, optimizer, goal, programs, schedule, seed, num_trials,
               steps, directory, result, max_member_steps, callbacks or Callbacks([]))
    stored = list(result.trials)
    if not run.restore(stored):
        if stored:
            raise ValueError(f"run_dir {str(directory.path)!r} has trials but no checkpoint to resume from")
        run.refill()
        run.save()
    every = schedule.checkpoint_every
    pbt = schedule.name == "pbt"
    total = programs.size if pbt else num_trials
    with progress_bar(total=total, enabled=progress, initial=0, desc=f"{task.name} {schedule.name}",
                      unit="trial") as bar:
        while run.running:
            finished_before = len(run.result.trials)
            run.step()
            # a resume from an older checkpoint replays the intervals since, identically
            if run.boundary % every == 0 or not run.running:
                run.save()
            bar.update(len(run.result.trials) - finished_before if not pbt else 0)
            bar.set_failures(len(run.result.failed))
            bar.set_postfix_str(f"interval {run.boundary}, {run.result.summary_line()}")
    return run.result, programs
