"""Objectives for the tests of trials on workers.

Standard library only: a worker process unpickles these by reference, importing this
module, so a worker that runs them never imports JAX and starts in a fraction of a second.
Each trial's wall-clock time depends on its configuration, so workers finish out of order.
"""

import math
import os
import signal
import sys
import time

# Read when a worker imports this module: shows the worker's environment was in place
# before the objective's module (and so anything it imports, JAX included) was loaded.
SLOT_AT_IMPORT = os.environ.get("JHPO_TEST_SLOT")


def seconds_for(config, shortest=0.01, longest=0.08):
    """A duration that varies with the configuration (its fractional part, scrambled)."""
    spread = math.modf(abs(config["x"]) * 7.31)[0]
    return shortest + (longest - shortest) * spread


def bowl(config):
    return (config["x"] - 1.0) ** 2 + (config["y"] + 2.0) ** 2


def uneven_bowl(config):
    """``bowl`` after a sleep that depends on the configuration."""
    time.sleep(seconds_for(config))
    return bowl(config)


def nap(config, seconds=0.4):
    time.sleep(seconds)
    return bowl(config)


def where_am_i(config):
    """The worker's process id, its slot from ``worker_env`` as it was when this module
    was imported, and whether JAX was ever imported in it."""
    time.sleep(0.2)
    return {"loss": bowl(config), "pid": os.getpid(), "slot": SLOT_AT_IMPORT,
            "jax_imported": "jax" in sys.modules}


def learning_curve(config, report, epochs=9):
    """A loss that falls with epochs towards ``bowl``; each epoch sleeps a little, for a
    time that depends on the configuration, so reports of several trials interleave."""
    loss = None
    for epoch in range(1, epochs + 1):
        time.sleep(seconds_for(config, 0.002, 0.02))
        loss = bowl(config) + 1.0 / epoch
        report(epoch, {"loss": loss})
    return {"loss": loss}


def reports_with_faults(config, report):
    """Reports that fail the trial in two ways: a report without the metric (the error
    is raised inside the objective) and a NaN."""
    if config["x"] < -2.0:
        report(1, {"accuracy": 0.5})
    for epoch in (1, 2, 3):
        report(epoch, {"loss": math.nan if config["x"] > 2.0 else bowl(config) + 1.0 / epoch})
    return {"loss": bowl(config)}


def misconfigured(config):
    raise KeyError("learning_rate")


def first_call_wins(marker):
    """True for the first caller across processes: it creates the file ``marker``."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def killed_once(config, marker):
    """The first trial kills its own worker with SIGKILL, as the out-of-memory killer would."""
    if first_call_wins(marker):
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return {"loss": bowl(config), "pid": os.getpid()}


def hangs_once(config, marker):
    """The first trial hangs for a minute; the others take a moment."""
    time.sleep(60.0 if first_call_wins(marker) else 0.05)
    return bowl(config)


def waits_for(config, flag):
    """Sleeps until the file ``flag`` exists."""
    while not os.path.exists(flag):
        time.sleep(0.02)
    return bowl(config)


def leaves_its_pid(config, folder, seconds=0.3):
    """Writes its worker's pid into ``folder`` (as a file name), then naps."""
    open(os.path.join(folder, str(os.getpid())), "w").close()
    time.sleep(seconds)
    return bowl(config)
