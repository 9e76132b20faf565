"""Trial records, the run directory and the result of a run.

A run directory holds ``meta.json`` (what was run: space, searcher, metric, mode, seed,
versions), ``trials.jsonl`` (one JSON line per finished trial, in the order the searcher
was told them), ``asks.jsonl`` (one line per call of the searcher's ``ask``: the trial
ids and rows it proposed, and how many trials had been told before it) and, when trials
report, ``reports.jsonl``. Every file but ``meta.json`` is append-only and each line is
flushed at once, so a run killed at any moment loses at most the line being written.

Reading never writes: a line cut short by a kill is skipped with a warning, and only a
writer (a run resuming, holding the directory's lock) repairs the files before appending.
Non-finite numbers are written as documented in :mod:`jhpo.jsonfile` and read back as
such.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jhpo import jsonfile
from jhpo.pareto import nondominated

META_FILE = "meta.json"
TRIALS_FILE = "trials.jsonl"
REPORTS_FILE = "reports.jsonl"
ASKS_FILE = "asks.jsonl"

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


def versions() -> dict[str, Any]:
    """The software and hardware a run used, so a result can be rerun exactly."""
    import jax
    import jaxlib

    from jhpo.version import __version__

    return {
        "jhpo": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "devices": [str(d.device_kind) for d in jax.devices()],
    }


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


class JsonLines(NamedTuple):
    """The records of a JSON-lines file and where its last complete line ends."""

    records: list[Any]
    good_end: int
    size: int


def read_json_lines(path: Path) -> JsonLines:
    """Every complete record of ``path``. A last line a kill cut short is skipped with a
    warning; a bad line before the last is an error naming its byte offset. A complete
    record missing only its newline counts (the writer adds the newline)."""
    if not path.exists():
        return JsonLines([], 0, 0)
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    records, good_end = [], 0
    for index, line in enumerate(lines):
        try:
            records.append(jsonfile.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if index == len(lines) - 1:
                warnings.warn(f"{path}: ignoring a truncated last record ({len(line)} bytes), "
                              "left by a run killed while writing", stacklevel=3)
                break
            raise ValueError(f"{path}: corrupt record at byte {good_end}") from None
        good_end += len(line)
    return JsonLines(records, good_end, len(data))


def repair_json_lines(path: Path) -> None:
    """Make ``path`` end on a complete line before appending: a truncated last line is
    cut, a complete last record missing its newline gets one."""
    lines = read_json_lines(path)
    if lines.good_end < lines.size:
        with open(path, "r+b") as f:
            f.truncate(lines.good_end)
    elif lines.size and not path.read_bytes().endswith(b"\n"):
        with open(path, "ab") as f:
            f.write(b"\n")


def unique_trials(records: Sequence[Any], path: Path) -> list[Trial]:
    """Trials by id, in file order: a repeated identical record is dropped with a warning,
    two different records with one id are an error naming it."""
    trials: dict[int, Trial] = {}
    for line, record in enumerate(records, start=1):
        try:
            trial = Trial.from_dict(record)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: line {line}: not a trial record ({error}): "
                             f"{str(record)[:80]}") from None
        earlier = trials.get(trial.trial_id)
        if earlier is None:
            trials[trial.trial_id] = trial
        elif jsonfile.same_json(dataclasses.asdict(earlier), dataclasses.asdict(trial)):
            warnings.warn(f"{path}: trial {trial.trial_id} is recorded twice; the copy is ignored",
                          stacklevel=3)
        else:
            raise ValueError(f"{path}: trial {trial.trial_id} has two different records; "
                             "the directory holds two runs' trials or was edited")
    return list(trials.values())


class RunDirectory:
    """Reads and appends the records of one run. Reading never writes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    @property
    def trials_path(self) -> Path:
        return self.path / TRIALS_FILE

    @property
    def reports_path(self) -> Path:
        return self.path / REPORTS_FILE

    @property
    def asks_path(self) -> Path:
        return self.path / ASKS_FILE

    def exists(self) -> bool:
        return self.meta_path.exists()

    def has_records(self) -> bool:
        return any(p.exists() and p.stat().st_size > 0 for p in (self.trials_path, self.asks_path))

    def read_meta(self) -> dict:
        try:
            meta = jsonfile.loads(self.meta_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.meta_path} is not valid JSON ({error})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{self.meta_path} must hold a JSON object, not {type(meta).__name__}")
        return meta

    def start(self, meta: dict, *, identity_keys: Sequence[str]) -> dict:
        """Create the run, or check that an existing one ran the same thing.

        Returns the meta on disk. ``identity_keys`` are the fields that must match for a
        resume to make sense (resuming with another space would mix two experiments).
        Records without a ``meta.json`` are refused: nothing would say what made them.
        """
        if self.exists():
            stored = self.read_meta()
            for key in identity_keys:
                if not jsonfile.same_json(stored.get(key), meta.get(key)):
                    raise ValueError(
                        f"run_dir {str(self.path)!r} holds a run with a different {key!r}: "
                        f"stored {stored.get(key)!r}, requested {meta.get(key)!r}; "
                        "use a new run_dir or the same settings to resume"
                    )
            return stored
        if self.has_records():
            raise ValueError(f"run_dir {str(self.path)!r} holds trial records but no {META_FILE}: "
                             "nothing says which settings made them; use a new run_dir")
        self.path.mkdir(parents=True, exist_ok=True)
        meta = dict(meta, created=time.time(), versions=versions())
        jsonfile.atomic_write_text(self.meta_path, jsonfile.dumps(meta, indent=2))
        return meta

    def read_trials(self) -> list[Trial]:
        """Trials recorded so far, one per id, in the order they were recorded."""
        return unique_trials(read_json_lines(self.trials_path).records, self.trials_path)

    def read_asks(self) -> list[AskRecord]:
        return [AskRecord(**record) for record in read_json_lines(self.asks_path).records]

    def read_reports(self) -> list[dict]:
        """Every complete report on file, in the order written."""
        return read_json_lines(self.reports_path).records

    def repair(self) -> None:
        """Before a run appends: every file ends on a complete line."""
        for path in (self.trials_path, self.asks_path, self.reports_path):
            repair_json_lines(path)

    def append(self, trial: Trial) -> None:
        jsonfile.append_line(self.trials_path, trial.to_json())

    def append_ask(self, ask: AskRecord) -> None:
        jsonfile.append_line(self.asks_path, ask.to_json())

    def append_report(self, trial_id: int, resource: float, metrics: dict) -> None:
        """Record one intermediate report of a running trial."""
        record = {"trial_id": trial_id, "resource": resource, "metrics": metrics, "time": time.time()}
        jsonfile.append_line(self.reports_path, jsonfile.dumps(record))

    def keep_asks(self, count: int) -> None:
        """Rewrite ``asks.jsonl`` with its first ``count`` asks (a run resumed from a
        checkpoint asks the later ones again)."""
        asks = self.read_asks()
        if len(asks) > count:
            jsonfile.atomic_write_text(self.asks_path, "".join(a.to_json() + "\n" for a in asks[:count]))

    def keep_reports(self, keep: Callable[[int, dict], bool]) -> None:
        """Rewrite ``reports.jsonl`` with the reports ``keep(index, report)`` accepts (a
        resumed run drops the reports of trials it trains again)."""
        reports = self.read_reports()
        kept = [report for index, report in enumerate(reports) if keep(index, report)]
        if len(kept) < len(reports):  # a cut-short last line is repair()'s to remove
            jsonfile.atomic_write_text(self.reports_path,
                                       "".join(jsonfile.dumps(r) + "\n" for r in kept))


class ReplicaDirectory:
    """A run directory as a process other than process 0 sees it, in a run over several
    processes (see :mod:`jhpo.multihost`): it reads the records process 0 read when the
    run opened (``snapshot``: meta, trials and asks as JSON records) and drops every
    write, since process 0 makes them. Reports are not mirrored: the population shells
    only ever rewrite them."""

    def __init__(self, path: str | os.PathLike, snapshot: dict):
        self.path = Path(path)
        self.snapshot = snapshot

    @property
    def trials_path(self) -> Path:
        return self.path / TRIALS_FILE

    def read_meta(self) -> dict:
        return self.snapshot["meta"]

    def read_trials(self) -> list[Trial]:
        return unique_trials(self.snapshot["trials"], self.trials_path)

    def read_asks(self) -> list[AskRecord]:
        return [AskRecord(**record) for record in self.snapshot["asks"]]

    def append(self, trial: Trial) -> None:
        pass

    def append_ask(self, ask: AskRecord) -> None:
        pass

    def append_report(self, trial_id: int, resource: float, metrics: dict) -> None:
        pass

    def keep_asks(self, count: int) -> None:
        pass

    def keep_reports(self, keep: Callable[[int, dict], bool]) -> None:
        pass


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


def load_run(run_dir: str | os.PathLike) -> Result:
    """The Result recorded in ``run_dir``; reads only, so a read-only directory opens."""
    directory = RunDirectory(run_dir)
    if not directory.exists():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a jhpo run directory (no {META_FILE})")
    return Result.from_meta(directory.read_trials(), directory.read_meta())
