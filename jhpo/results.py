"""Trial records, the run directory and the result of a run.

A run directory holds ``meta.json`` (what was run: space, searcher, metric, mode, seed,
versions) and ``trials.jsonl`` (one JSON line per finished trial, flushed at once). The
JSONL file is append-only, so a run killed at any moment loses at most the line being
written; loading tolerates such a truncated last line and reports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

META_FILE = "meta.json"
TRIALS_FILE = "trials.jsonl"
REPORTS_FILE = "reports.jsonl"

COMPLETED, FAILED, STOPPED = "completed", "failed", "stopped"


@dataclasses.dataclass
class Trial:
    """One evaluated configuration."""

    trial_id: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    value: float | None
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
        return json.dumps(dataclasses.asdict(self), default=_json_default, allow_nan=False)

    @classmethod
    def from_dict(cls, record: dict) -> Trial:
        fields = {f.name for f in dataclasses.fields(cls)}
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        if not isinstance(record, dict) or not set(required) <= record.keys():
            raise ValueError(f"not a trial record (a JSON object with {required}): "
                             f"{json.dumps(record)[:80]}")
        return cls(**{k: v for k, v in record.items() if k in fields})


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def finite_or_none(value) -> float | None:
    """JSON has no NaN: non-finite numbers are recorded as null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def clean_metrics(metrics: dict) -> dict:
    """Metrics made JSON-safe: numpy and jax scalars to floats, non-finite to null."""
    cleaned = {}
    for name, value in metrics.items():
        if hasattr(value, "item") and np.ndim(value) == 0:
            value = value.item()
        if isinstance(value, float):
            value = finite_or_none(value)
        cleaned[str(name)] = value
    return cleaned


def versions() -> dict[str, Any]:
    """The software and hardware a run used, so a result can be rerun exactly."""
    import jax
    import jaxlib

    from jhpo import __version__

    return {
        "jhpo": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "devices": [str(d.device_kind) for d in jax.devices()],
    }


class RunDirectory:
    """Reads and appends the records of one run."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    @property
    def trials_path(self) -> Path:
        return self.path / TRIALS_FILE

    def exists(self) -> bool:
        return self.meta_path.exists()

    def read_meta(self) -> dict:
        return json.loads(self.meta_path.read_text())

    def start(self, meta: dict, *, identity_keys: Sequence[str]) -> dict:
        """Create the run, or check that an existing one ran the same thing.

        Returns the meta on disk. ``identity_keys`` are the fields that must match for a
        resume to make sense (resuming with another space would mix two experiments).
        """
        if self.exists():
            stored = self.read_meta()
            for key in identity_keys:
                if _normalised(stored.get(key)) != _normalised(meta.get(key)):
                    raise ValueError(
                        f"run_dir {str(self.path)!r} holds a run with a different {key!r}: "
                        f"stored {stored.get(key)!r}, requested {meta.get(key)!r}; "
                        "use a new run_dir or the same settings to resume"
                    )
            return stored
        self.path.mkdir(parents=True, exist_ok=True)
        meta = dict(meta, created=time.time(), versions=versions())
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=_json_default))
        tmp.replace(self.meta_path)
        return meta

    def load_trials(self, *, repair: bool = False) -> list[Trial]:
        """Trials recorded so far. A truncated last line (a kill mid-write) is skipped
        with a warning, and removed from the file when ``repair`` is set so that later
        appends start on a fresh line."""
        if not self.trials_path.exists():
            return []
        data = self.trials_path.read_bytes()
        lines = data.splitlines(keepends=True)
        trials, good_end = [], 0
        for index, line in enumerate(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if index == len(lines) - 1:
                    warnings.warn(
                        f"{self.trials_path}: ignoring a truncated last record "
                        f"({len(line)} bytes), left by a run killed while writing",
                        stacklevel=2,
                    )
                    break
                raise ValueError(f"{self.trials_path}: corrupt record at byte {good_end}") from None
            try:
                trials.append(Trial.from_dict(record))
            except ValueError as error:
                raise ValueError(f"{self.trials_path}: line {index + 1}: {error}") from None
            good_end += len(line)
        if repair and good_end < len(data):
            with open(self.trials_path, "r+b") as f:
                f.truncate(good_end)
        return trials

    @property
    def reports_path(self) -> Path:
        return self.path / REPORTS_FILE

    def append(self, trial: Trial) -> None:
        self._append_line(self.trials_path, trial.to_json())

    def append_report(self, trial_id: int, resource: float, metrics: dict) -> None:
        """Record one intermediate report of a running trial."""
        record = {"trial_id": trial_id, "resource": resource, "metrics": clean_metrics(metrics),
                  "time": time.time()}
        self._append_line(self.reports_path, json.dumps(record, default=_json_default))

    @staticmethod
    def _append_line(path: Path, line: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    def read_reports(self) -> list[dict]:
        """Every complete report on file, in the order written; the file is left as it is
        (a line cut short by a kill is skipped)."""
        if not self.reports_path.exists():
            return []
        reports = []
        for line in self.reports_path.read_text().splitlines():
            try:
                reports.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return reports

    def load_reports(self, finished: set[int]) -> list[dict]:
        """Reports of the ``finished`` trials, in the order they were made. Reports of
        trials that never finished (a killed run) are dropped from the file, since a
        resumed run evaluates those trials again from the start."""
        if not self.reports_path.exists():
            return []
        kept_lines, reports = [], []
        for line in self.reports_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a report cut short by a kill belongs to an unfinished trial
            if record["trial_id"] in finished:
                kept_lines.append(line)
                reports.append(record)
        tmp = self.reports_path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept_lines))
        tmp.replace(self.reports_path)
        return reports


def _normalised(value):
    return json.loads(json.dumps(value, default=_json_default))


@dataclasses.dataclass
class Result:
    """All trials of a run and what was optimised."""

    trials: list[Trial]
    metric: str | list[str] | None = None
    mode: str | list[str] = "min"
    meta: dict = dataclasses.field(default_factory=dict)
    constraints: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_meta(cls, trials: list[Trial], meta: dict) -> Result:
        return cls(trials, meta.get("metric"), meta.get("mode", "min"), meta,
                   list(meta.get("constraints") or []))

    @property
    def is_multiobjective(self) -> bool:
        return isinstance(self.metric, list) and len(self.metric) > 1

    @property
    def completed(self) -> list[Trial]:
        return [t for t in self.trials if t.ok]

    @property
    def feasible(self) -> list[Trial]:
        """Usable trials that satisfy every constraint."""
        return [t for t in self.trials if t.ok and t.feasible is not False]

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.status == FAILED]

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
        from jhpo.pareto import nondominated

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


def load_run(run_dir: str | os.PathLike) -> Result:
    """The Result recorded in ``run_dir``."""
    directory = RunDirectory(run_dir)
    if not directory.exists():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a jhpo run directory (no {META_FILE})")
    return Result.from_meta(directory.load_trials(), directory.read_meta())
