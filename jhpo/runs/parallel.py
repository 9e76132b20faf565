"""How ``tune`` runs its trials: :class:`Parallel` holds its settings on parallel trials
(how many workers, which backend, rounds or not), checks them and makes the pool."""

from __future__ import annotations

import importlib.util
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from jhpo.runs.pools import InProcessPool, Judge, TrialPool
from jhpo.runs.workers import LocalPool

# Trials per round of a synchronous run when ``batch_size`` is not given: a constant, not
# the number of workers, so the configurations do not depend on the machine.
SYNCHRONOUS_BATCH_SIZE = 8
BACKENDS = ("local", "ray")


class Parallel(NamedTuple):
    """How ``tune`` runs its trials: on how many workers, where, and in rounds or not."""

    workers: int = 1
    backend: str = "local"
    worker_env: Callable[[int], Mapping[str, str]] | None = None
    resources_per_trial: Mapping[str, Any] | None = None
    batch_size: int | None = None  # synchronous rounds of this many trials; None: asynchronous
    trial_timeout_s: float | None = None

    @classmethod
    def from_arguments(cls, workers, backend, worker_env, resources_per_trial, synchronous,
                       batch_size, trial_timeout_s) -> Parallel:
        """Validate ``tune``'s arguments on parallel trials."""
        if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
            raise ValueError(f"workers={workers!r} must be a positive integer")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} must be one of {list(BACKENDS)}")
        if backend == "ray" and importlib.util.find_spec("ray") is None:
            raise ImportError("backend='ray' needs Ray: pip install 'jhpo[ray]' "
                              "(or pip install ray)")
        if worker_env is not None and not callable(worker_env):
            raise TypeError(f"worker_env={worker_env!r} must be a function of the worker's index "
                            "returning a dict of environment variables")
        if worker_env is not None and backend == "ray":
            raise ValueError("worker_env is for backend='local'; Ray gives each task its GPUs "
                             "from resources_per_trial={'num_gpus': 1} (use Ray's runtime_env "
                             "for other variables)")
        if resources_per_trial is not None and (backend != "ray" or not isinstance(
                resources_per_trial, Mapping)):
            raise ValueError(f"resources_per_trial={resources_per_trial!r} needs backend='ray' "
                             "and a dict of Ray task options, such as {'num_gpus': 1}")
        if not isinstance(synchronous, bool):
            raise TypeError(f"synchronous={synchronous!r} must be True or False")
        if batch_size is not None and not synchronous:
            raise ValueError(f"batch_size={batch_size!r} sets the rounds of synchronous=True; "
                             "an asynchronous run asks one trial whenever a worker is free")
        if synchronous:
            batch_size = SYNCHRONOUS_BATCH_SIZE if batch_size is None else batch_size
            if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                    or batch_size < 1:
                raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        if trial_timeout_s is not None and (isinstance(trial_timeout_s, bool) or not isinstance(
                trial_timeout_s, numbers.Real) or not trial_timeout_s > 0):
            raise ValueError(f"trial_timeout_s={trial_timeout_s!r} must be a positive number "
                             "of seconds")
        return cls(int(workers), backend, worker_env,
                   None if resources_per_trial is None else dict(resources_per_trial),
                   None if batch_size is None else int(batch_size),
                   None if trial_timeout_s is None else float(trial_timeout_s))

    def describe(self) -> dict:
        """The ``parallel`` field of meta.json (descriptive: a run may resume otherwise)."""
        return {"workers": self.workers, "backend": self.backend, "batch_size": self.batch_size}

    def pool(self, objective: Callable, judge: Judge, reports: bool, slots: int) -> TrialPool:
        """The pool the trials run on, with ``slots`` (at most ``workers``) slots."""
        if self.backend == "ray":
            from jhpo.runs.ray_backend import RayPool  # Ray is an optional dependency

            return RayPool(objective, slots, judge, reports, self.resources_per_trial)
        if self.workers == 1 and self.worker_env is None and self.trial_timeout_s is None:
            return InProcessPool(objective, judge, reports)
        return LocalPool(objective, slots, judge, reports, self.worker_env)
