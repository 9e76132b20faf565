"""One process of a run over several processes, for tests/runs/test_multihost.py.

    python tests/runs/multihost_worker.py SPEC

SPEC (JSON): ``devices`` (CPU devices of this process), ``num_processes``,
``process_id``, ``port`` (the coordinator's, on localhost), ``timeout_s`` and ``runs``:
a list of ``{"name", "run_dir", "result"}``, ``name`` one of ``RUNS``. The process runs
each run in turn with ``tune_population`` on the toy regression task and writes its
``Result`` (trials and meta, as JSON) to ``result``, a file of its own. With
``"checks": DIRECTORY`` it first writes what the agreement helpers of ``jhpo.multihost``
did on this process to ``DIRECTORY/checks-<process>.json`` (see ``agreement_checks``).
"""

import dataclasses
import json
import os
import sys

SPEC = json.loads(sys.argv[1])
# before JAX starts: this process's devices, and the test suite's compile settings
os.environ["JAX_NUM_CPU_DEVICES"] = str(SPEC["devices"])
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import jax

from jhpo import jsonfile, multihost

if SPEC["num_processes"] > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    multihost.initialize(f"localhost:{SPEC['port']}", SPEC["num_processes"], SPEC["process_id"],
                         timeout_s=SPEC["timeout_s"])

import jhpo
from tests.population.toy_task import TASK

SPACE = {
    "learning_rate": jhpo.loguniform(1e-3, 3e-1),
    "momentum": jhpo.uniform(0.0, 0.9),
    "batch_size": jhpo.randint(1, 32),
}
# population sizes that are no multiple of the 4 devices, so members are padded; a
# checkpoint every few intervals, since each costs a few collectives
RUNS = {
    "random": {"population_size": 6, "num_trials": 10, "steps": 12, "chunk_size": 4},
    "asha": {"population_size": 3, "num_trials": 12, "steps": 9, "scheduler": "asha",
             "scheduler_options": {"interval": 1, "checkpoint_every": 2}},
    "promotion": {"population_size": 4, "num_trials": 12, "steps": 9, "scheduler": "asha",
                  "scheduler_options": {"interval": 1, "form": "promotion", "checkpoint_every": 3}},
    "pbt": {"population_size": 4, "steps": 12, "scheduler": "pbt",
            "scheduler_options": {"interval": 2, "checkpoint_every": 2}},
}


def outcome(action) -> str:
    try:
        return f"returned {json.dumps(action())}"
    except Exception as error:  # noqa: BLE001 - the outcome is what the test reads
        return f"{type(error).__name__}: {error}"


def agreement_checks(directory: str) -> dict:
    """What each helper did here: a value process 0 computes, an error it raises, a
    value that differs between processes, and a run whose directory process 0 cannot
    lock (another RunLock of process 0 holds it)."""
    import contextlib

    import numpy as np

    from jhpo.lock import RunLock

    locked = os.path.join(directory, "locked-run")
    holder = RunLock(locked) if multihost.is_writer() else contextlib.nullcontext()
    with holder:
        return {
            "gathered": outcome(lambda: multihost.allgather_json([jax.process_index()])),
            "computed": outcome(lambda: multihost.on_writer(lambda: {"by": jax.process_index()})),
            "raised": outcome(lambda: multihost.on_writer(lambda: 1 / 0)),
            "differing": outcome(lambda: multihost.check_same("the process index",
                                                              np.int32(jax.process_index()))),
            "locked": outcome(lambda: len(jhpo.tune_population(TASK, SPACE, run_dir=locked,
                                                               progress=False, **RUNS["random"]).trials)),
        }


if "checks" in SPEC:
    with open(os.path.join(SPEC["checks"], f"checks-{jax.process_index()}.json"), "w") as f:
        json.dump(agreement_checks(SPEC["checks"]), f)

for run in SPEC["runs"]:
    result = jhpo.tune_population(TASK, SPACE, seed=3, run_dir=run["run_dir"], progress=False,
                                  **RUNS[run["name"]])
    record = {"meta": result.meta, "trials": [dataclasses.asdict(t) for t in result.trials]}
    with open(run["result"], "w") as f:
        f.write(jsonfile.dumps(record))
print(json.dumps({"process": jax.process_index(), "devices": jax.device_count()}))
