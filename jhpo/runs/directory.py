"""The run directory: the files a run's records live in, read and appended.

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

import dataclasses
import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from jhpo import jsonfile
from jhpo.runs.records import AskRecord, Result, Trial

META_FILE = "meta.json"
TRIALS_FILE = "trials.jsonl"
REPORTS_FILE = "reports.jsonl"
ASKS_FILE = "asks.jsonl"


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


def load_run(run_dir: str | os.PathLike) -> Result:
    """The Result recorded in ``run_dir``; reads only, so a read-only directory opens."""
    directory = RunDirectory(run_dir)
    if not directory.exists():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a jhpo run directory (no {META_FILE})")
    return Result.from_meta(directory.read_trials(), directory.read_meta())
