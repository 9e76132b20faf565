"""Populations: many members of one JAX task trained as one compiled program.

- ``task``: ``Task`` (one member's pure functions), hyperparameter columns, member keys;
- ``programs``: ``PopulationPrograms``, the compiled init / advance / evaluate /
  select / gather programs over a population sharded across devices;
- ``train``: ``train`` and ``train_configs``, a whole population trained and evaluated.
"""

from jhpo.population.programs import POPULATION_AXIS, PopulationPrograms, trace_settings
from jhpo.population.task import (
    HParams,
    Task,
    TaskError,
    check_hparams,
    check_task,
    masked_mean,
    member_keys,
    member_seeds,
    stack_hparams,
    task_config,
    typed_keys,
)
from jhpo.population.train import (
    BACKEND_CHUNK_PER_DEVICE,
    BATCH_STRATEGIES,
    DEFAULT_BATCH_STRATEGY,
    PopulationResult,
    default_chunk_size,
    steps_per_block,
    train,
    train_configs,
)

__all__ = [
    "BACKEND_CHUNK_PER_DEVICE",
    "BATCH_STRATEGIES",
    "DEFAULT_BATCH_STRATEGY",
    "POPULATION_AXIS",
    "HParams",
    "PopulationPrograms",
    "PopulationResult",
    "Task",
    "TaskError",
    "check_hparams",
    "check_task",
    "default_chunk_size",
    "masked_mean",
    "member_keys",
    "member_seeds",
    "stack_hparams",
    "steps_per_block",
    "task_config",
    "trace_settings",
    "train",
    "train_configs",
    "typed_keys",
]
