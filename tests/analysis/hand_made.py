"""Hand-made trials, runs and experiments whose statistics are worked out by hand."""

from pathlib import Path

from jhpo.analysis.experiments import ExperimentRecord
from jhpo.runs.records import Result, Trial


def trial(trial_id, value, *, start=None, end=None, status=None, metrics=None, resource=None):
    """A hand-made trial; by default trial i runs from i to i + 1 seconds."""
    status = status or ("completed" if value is not None else "failed")
    start = float(trial_id) if start is None else start
    record = Trial(trial_id=trial_id, config={"x": trial_id}, metrics=metrics or {}, value=value,
                   status=status, error=None, start_time=start,
                   end_time=start + 1.0 if end is None else end, seed=0)
    record.resource = resource
    return record


def run_of(values, mode="min"):
    return Result([trial(i, v) for i, v in enumerate(values)], "loss", mode)


# Two methods, three seeds each, values in the order the trials finished (None = failed).
HAND_RUNS = {
    "a": {0: [5, 3, 4], 1: [2, 6, 1], 2: [None, 4, 4]},
    "b": {0: [4, 4, 2, 1], 1: [3, 1, 1, 1], 2: [6, 5, 5, 0.5]},
}


def hand_record(mode="min", optimum=None, runs=HAND_RUNS):
    results = {m: {s: run_of(v, mode) for s, v in seeds.items()} for m, seeds in runs.items()}
    return ExperimentRecord(Path("hand"), results, "loss", mode, optimum)
