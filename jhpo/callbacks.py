"""Callbacks: objects told what a run does as it does it, and a TensorBoard logger.

A callback is any object with some of these methods; a method it lacks is simply not
called:

- ``on_trial_start(trial_id, config)``: a trial is about to run;
- ``on_report(trial_id, resource, metrics)``: a running trial reported (a black-box
  objective's ``report``, or a population member's evaluation after an interval);
- ``on_trial_end(trial)``: a trial was recorded (a :class:`jhpo.Trial`);
- ``on_run_end(result)``: the run ended (its :class:`jhpo.Result`).

Callbacks run in the driver process, after the record they describe is written, so a
callback that raises stops the run without losing a trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

HOOKS = ("on_trial_start", "on_report", "on_trial_end", "on_run_end")


class Callbacks:
    """The callbacks of one run, called in the order given."""

    def __init__(self, callbacks: Sequence[Any] | None):
        callbacks = list(callbacks or [])
        for index, callback in enumerate(callbacks):
            if not any(callable(getattr(callback, hook, None)) for hook in HOOKS):
                raise TypeError(f"callbacks[{index}] ({type(callback).__name__}) has none of the "
                                f"methods {list(HOOKS)}")
        self.callbacks = callbacks

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if callable(method):
                method(*args)

    def trial_start(self, trial_id: int, config: Mapping) -> None:
        self._call("on_trial_start", trial_id, config)

    def report(self, trial_id: int, resource: float, metrics: Mapping) -> None:
        self._call("on_report", trial_id, resource, metrics)

    def trial_end(self, trial) -> None:
        self._call("on_trial_end", trial)

    def run_end(self, result) -> None:
        self._call("on_run_end", result)


class TensorBoardLogger:
    """Writes TensorBoard event files into ``logdir``: every trial's reported metrics as
    ``trial_<id>/<metric>`` against the resource, each finished trial's metrics as
    ``trials/<metric>`` against its trial id, and the incumbent (best value so far, in
    ``mode``) as ``incumbent/value`` against the number of trials finished. Needs
    ``tensorboardX`` (``pip install "jhpo[tensorboard]"``)."""

    def __init__(self, logdir: str, mode: str = "min"):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as error:
            raise ImportError('TensorBoardLogger needs tensorboardX: pip install "jhpo[tensorboard]"'
                              ) from error
        if mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r} must be 'min' or 'max'")
        self.writer = SummaryWriter(logdir)
        self.sign = 1.0 if mode == "min" else -1.0
        self.best: float | None = None
        self.finished = 0

    def on_report(self, trial_id: int, resource: float, metrics: Mapping) -> None:
        for name, value in _scalars(metrics):
            self.writer.add_scalar(f"trial_{trial_id}/{name}", value, global_step=int(resource))

    def on_trial_end(self, trial) -> None:
        self.finished += 1
        for name, value in _scalars(trial.metrics):
            self.writer.add_scalar(f"trials/{name}", value, global_step=trial.trial_id)
        if trial.ok and trial.feasible is not False and isinstance(trial.value, float):
            if self.best is None or self.sign * trial.value < self.sign * self.best:
                self.best = trial.value
        if self.best is not None:
            self.writer.add_scalar("incumbent/value", self.best, global_step=self.finished)

    def on_run_end(self, result) -> None:
        self.writer.flush()
        self.writer.close()


def _scalars(metrics: Mapping) -> list[tuple[str, float]]:
    """The finite real numbers among ``metrics``."""
    out = []
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append((str(name), float(value)))
    return out
