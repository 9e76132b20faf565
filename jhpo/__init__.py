"""jhpo: hyperparameter optimization in JAX."""

__version__ = "0.1.0"

from jhpo.analysis import load_experiment
from jhpo.crossval import kfold
from jhpo.experiment import Method, run_experiment
from jhpo.population_tuner import tune_population
from jhpo.results import Result, Trial, load_run
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
from jhpo.tuner import Optimizer, tune

__all__ = [
    "Method",
    "Optimizer",
    "Result",
    "Searcher",
    "Space",
    "SpaceError",
    "Trial",
    "choice",
    "kfold",
    "load_experiment",
    "load_run",
    "loguniform",
    "lograndint",
    "ordinal",
    "randint",
    "run_experiment",
    "tune",
    "tune_population",
    "uniform",
]
