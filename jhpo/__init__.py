"""jhpo: hyperparameter optimization in JAX."""

__version__ = "0.1.0"

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
    "Optimizer",
    "Result",
    "Searcher",
    "Space",
    "SpaceError",
    "Trial",
    "choice",
    "load_run",
    "loguniform",
    "lograndint",
    "ordinal",
    "randint",
    "tune",
    "uniform",
]
