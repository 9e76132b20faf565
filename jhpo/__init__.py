"""jhpo: hyperparameter optimization in JAX."""

from jhpo import callbacks, multihost, pareto, problems, schedulers, searchers, tasks
from jhpo.analysis.experiments import load_experiment
from jhpo.crossval import kfold
from jhpo.experiment import Method, run_experiment
from jhpo.population import Task
from jhpo.runs.population import tune_population
from jhpo.runs.blackbox import tune
from jhpo.runs.directory import load_run
from jhpo.runs.optimizer import Optimizer
from jhpo.runs.records import Result, Trial
from jhpo.searchers import Searcher
from jhpo.space import (
    Space,
    SpaceError,
    choice,
    loguniform,
    lograndint,
    ordinal,
    randint,
    uniform,
)
from jhpo.version import __version__

__all__ = [
    "Method",
    "Optimizer",
    "Result",
    "Searcher",
    "Space",
    "SpaceError",
    "Task",
    "Trial",
    "__version__",
    "callbacks",
    "choice",
    "kfold",
    "load_experiment",
    "load_run",
    "loguniform",
    "lograndint",
    "multihost",
    "ordinal",
    "pareto",
    "problems",
    "randint",
    "run_experiment",
    "schedulers",
    "searchers",
    "tasks",
    "tune",
    "tune_population",
    "uniform",
]
