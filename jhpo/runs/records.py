"""What a run records: ``Trial`` (one evaluated configuration), ``AskRecord`` (one call of
the searcher's ``ask``) and ``Result`` (all trials of a run and what was optimised).

:mod:`jhpo.runs.directory` keeps these records on disk.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from jhpo import jsonfile
from jhpo.pareto import nondominated

COMPLETED, FAILED, STOPPED = "completed", "failed", "stopped"


@dataclasses.dataclass
class Trial:
    """One evaluated configuration."""

    trial_id: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    value: float | list[float | None] | None
    status: str
    error: str | None
    start_time: float
    end_time: float
    seed: int
    # The unit-cube row the searcher proposed; kept so a resumed run tells the searcher
    # exactly what it asked, bit for bit, and so continues the same sequence.
    row: list[float] | None = None
    # The largest resource (epoch, step) the trial reported, when it reported any.
    resource: float | None = None
    # With constraints: whether every constraint metric was > 0. None without constraints.
    feasible: bool | None = None
    # PBT lineage: the trial whose state this one started from, and at which resource.
    parent_id: int | None = None
    start_resource: float | None = None

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time

    @property
    def ok(self) -> bool:
        """Finished with a usable value: completed, or stopped early by a scheduler."""
        values = self.value if isinstance(self.value, list) else [self.value]
        return self.status in (COMPLETED, STOPPED) and all(
            v is not None and math.isfinite(v) for v in values)

    def to_json(self) -> str:
        return jsonfile.dumps(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, record: dict) -> Trial:
        """A trial from its JSON record; a record that is not a trial is a ValueError."""
        fields = {f.name for f in dataclasses.fields(cls)}
        required = sorted(f.name for f in dataclasses.fields(cls)
                          if f.default is dataclasses.MISSING
                          and f.default_factory is dataclasses.MISSING)
        if not isinstance(record, dict) or not set(required) <= record.keys():
            raise ValueError(f"a JSON object with the fields {required} is needed")
        if not isinstance(record["trial_id"], int) or isinstance(record["trial_id"], bool) \
                or record["trial_id"] < 0:
            raise ValueError(f"trial_id={record['trial_id']!r} must be an integer >= 0")
        return cls(**{k: v for k, v in record.items() if k in fields})


def error_headline(error: str | None) -> str:
    """The first non-blank line of an error text ("-" when there is none)."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[0] if lines else "-"


def clean_metrics(metrics: dict) -> dict:
    """Metrics as plain Python values: numpy and JAX scalars become numbers (non-finite
    ones stay non-finite floats), arrays lists, names strings."""
    return jsonfile.loads(jsonfile.dumps(metrics))



class AskRecord(NamedTuple):
    """One call of the searcher's ``ask``: the trials it proposed (ids and unit-cube rows),
    the number of trials the searcher had been told before it, and the ids of the trials
    asked before it and not yet told (running on other workers: the searcher saw them as
    pending). ``pending`` is None in records made before it was recorded."""

    trial_ids: list[int]
    rows: list[list[float]]
    num_told: int
    pending: list[int] | None = None
    # the rows were the user's initial configurations, not proposed by the searcher
    given: bool = False

    def to_json(self) -> str:
        return jsonfile.dumps(self._asdict())



@dataclasses.dataclass
class Result:
    """All trials of a run and what was optimised."""

    trials: list[Trial]
    metric: str | list[str] | None = None
    mode: str | list[str] = "min"
    meta: dict = dataclasses.field(default_factory=dict)
    constraints: list[str] = dataclasses.field(default_factory=list)
    # Ctrl-C ended the run before its budget: the trials are those recorded by then.
    interrupted: bool = False

    @classmethod
    def from_meta(cls, trials: list[Trial], meta: dict) -> Result:
        return cls(trials, meta.get("metric"), meta.get("mode", "min"), meta,
                   list(meta.get("constraints") or []))

    @property
    def is_multiobjective(self) -> bool:
        return isinstance(self.metric, list) and len(self.metric) > 1

    @property
    def completed(self) -> list[Trial]:
        """Trials with a usable value: completed, and stopped early by a scheduler (a
        stopped trial's last value is a real measurement); see ``stopped``."""
        return [t for t in self.trials if t.ok]

    @property
    def stopped(self) -> list[Trial]:
        """Trials a scheduler stopped early (PBT's replaced members included)."""
        return [t for t in self.trials if t.status == STOPPED]

    @property
    def feasible(self) -> list[Trial]:
        """Usable trials that satisfy every constraint."""
        return [t for t in self.trials if t.ok and t.feasible is not False]

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.status == FAILED]

    def failure_counts(self) -> list[tuple[int, str]]:
        """(count, first line of the error) over the failed trials, most common first
        (ties in the order the errors first happened)."""
        ordered = sorted(self.failed, key=lambda t: t.trial_id)
        counts = collections.Counter(error_headline(t.error) for t in ordered)
        return [(n, error) for error, n in counts.most_common()]

    def failure_summary(self) -> str | None:
        """One line counting the failed trials by error, or None when none failed."""
        counts = self.failure_counts()
        if not counts:
            return None
        parts = "; ".join(f"{n} x {error}" for n, error in counts)
        return f"{len(self.failed)} of {len(self.trials)} trials failed: {parts}"

    @property
    def best(self) -> Trial | None:
        """The feasible trial with the best value (None when there is none)."""
        if self.is_multiobjective:
            raise ValueError(
                f"this run has several objectives {self.metric}: there is no single best; "
                "use pareto_front()"
            )
        feasible = self.feasible
        if not feasible:
            return None
        sign = 1.0 if self.mode == "min" else -1.0
        return min(feasible, key=lambda t: (sign * t.value, t.trial_id))

    @property
    def best_config(self) -> dict | None:
        best = self.best
        return None if best is None else best.config

    def objective_matrix(self, trials: list[Trial]) -> np.ndarray:
        """Objective values of ``trials`` as an (n, k) array signed to be minimised."""
        modes = self.mode if isinstance(self.mode, list) else [self.mode]
        signs = np.array([1.0 if m == "min" else -1.0 for m in modes])
        values = [t.value if isinstance(t.value, list) else [t.value] for t in trials]
        return np.asarray(values, float).reshape(len(trials), len(signs)) * signs

    def pareto_front(self) -> list[Trial]:
        """The feasible trials no other feasible trial dominates, in trial order."""

        feasible = self.feasible
        if not feasible:
            return []
        front = np.asarray(nondominated(self.objective_matrix(feasible)))
        return [t for t, on_front in zip(feasible, front) if on_front]

    def anytime(self) -> tuple[np.ndarray, np.ndarray]:
        """Best-so-far feasible value against wall-clock seconds since the first trial
        started. One point per trial, in order of finishing; NaN until something
        feasible completed."""
        if self.is_multiobjective:
            raise ValueError("anytime() follows one objective; this run has several")
        if not self.trials:
            return np.zeros(0), np.zeros(0)
        ordered = sorted(self.trials, key=lambda t: t.end_time)
        origin = min(t.start_time for t in self.trials)
        elapsed = np.array([t.end_time - origin for t in ordered])
        values = np.array([t.value if t.ok and t.feasible is not False else np.nan
                           for t in ordered], dtype=float)
        return elapsed, best_so_far(values, self.mode)

    def summary_line(self) -> str:
        """A few words on where the run stands, for progress bars."""
        if self.is_multiobjective:
            return f"front {len(self.pareto_front())}"
        best = self.best
        return "no feasible trial yet" if best is None else f"best {best.value:.5g}"

    def to_pandas(self):
        """A DataFrame with one row per trial: id, status, value, config and metrics
        columns (``config/<name>``, ``metrics/<name>``). Needs pandas."""
        try:
            import pandas as pd
        except ImportError as error:  # pandas is optional
            raise ImportError("Result.to_pandas() needs pandas: pip install pandas") from error
        return pd.DataFrame([flatten_trial(t) for t in self.trials])

    def __repr__(self) -> str:
        done = {status: sum(t.status == status for t in self.trials) for status in (COMPLETED, STOPPED)}
        counts = (f"{len(self.trials)} trials, {done[COMPLETED]} completed, "
                  f"{done[STOPPED]} stopped, {len(self.failed)} failed")
        if self.is_multiobjective:
            return f"Result({counts}, {len(self.pareto_front())} on the Pareto front)"
        best = self.best
        best_text = "none" if best is None else f"{best.value:.6g} {best.config}"
        return f"Result({counts}, best: {best_text})"


def best_so_far(values: np.ndarray, mode: str = "min") -> np.ndarray:
    """Running best of ``values`` (NaN entries skipped; NaN before the first number)."""
    sign = 1.0 if mode == "min" else -1.0
    signed = np.where(np.isnan(values), np.inf, sign * np.asarray(values, dtype=float))
    running = np.minimum.accumulate(signed) if signed.size else signed
    return np.where(np.isinf(running), np.nan, sign * running)


def flatten_trial(trial: Trial) -> dict:
    row = {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "value": trial.value,
        "duration_s": trial.duration,
        "error": trial.error,
    }
    row.update({f"config/{k}": v for k, v in trial.config.items()})
    row.update({f"metrics/{k}": v for k, v in trial.metrics.items()})
    return row
