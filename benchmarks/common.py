"""Pieces shared by the benchmark scripts in this folder.

The scripts are run as ``python benchmarks/NAME.py``, which puts this folder on
``sys.path``, so they import these helpers with ``from common import ...``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time


def make_parser(doc: str, quick_help: str, json_help: str) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc``, with ``--quick`` and ``--json``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="PATH", help=json_help)
    return parser


def add_cpu_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this core")


def pin_cpu(cpu: int | None) -> None:
    """Pin the process to core ``cpu`` (before JAX starts its thread pool); None: leave it."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def modules_available(*names: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in names)


def optuna_available(torch: bool = False) -> bool:
    """Optuna is installed and, with ``torch``, so is torch, which its GPSampler needs."""
    return modules_available("optuna", *(("torch",) if torch else ()))


def versions(devices: bool = False, extras: tuple[str, ...] = ()) -> dict:
    """jhpo, jax, jaxlib and Python versions; with ``devices`` the JAX devices; and the
    versions of the modules ``extras`` when all of them are installed."""
    import jax
    import jaxlib

    import jhpo

    found = {"jhpo": jhpo.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
             "python": platform.python_version()}
    if devices:
        found["devices"] = [str(d) for d in jax.devices()]
    if extras and modules_available(*extras):
        for name in extras:
            found[name] = importlib.import_module(name).__version__
    return found


def write_json(path: str | None, payload, indent: int = 1, **options) -> None:
    """Write ``payload`` to ``path`` as JSON; nothing when ``path`` is None or empty."""
    if path:
        with open(path, "w") as handle:
            json.dump(payload, handle, indent=indent, **options)


def evaluate(problem, config):
    """The problem's value(s) at ``config``, computed in float64."""
    import jax

    with jax.enable_x64(True):
        return problem(config)


def timed_ask(searcher, state, key, clock=time.perf_counter):
    """One row asked, its computation waited for: the row, the new state and the seconds."""
    import jax

    start = clock()
    row, state, _ = searcher.ask(state, key, 1)
    jax.block_until_ready(row)
    return row, state, clock() - start


def run_jhpo_sequential(searcher, problem, seed, evaluations):
    """Ask one row, evaluate it, tell it, ``evaluations`` times: the values and the
    seconds of each ask."""
    import jax
    import jax.numpy as jnp

    key = jax.random.key(seed)
    state = searcher.init(key)
    values, seconds = [], []
    for i in range(evaluations):
        row, state, ask_seconds = timed_ask(searcher, state, jax.random.fold_in(key, i))
        seconds.append(ask_seconds)
        value = evaluate(problem, problem.space.to_configs(row)[0])
        state = searcher.tell(state, row, jnp.asarray([value], jnp.float32))
        values.append(value)
    return values, seconds


def run_optuna_sequential(study, distributions, problem, evaluations):
    """Optuna's ask and tell, ``evaluations`` times: the values and the seconds of each ask."""
    values, seconds = [], []
    for _ in range(evaluations):
        start = time.perf_counter()
        trial = study.ask(distributions)
        seconds.append(time.perf_counter() - start)
        value = evaluate(problem, dict(trial.params))
        study.tell(trial, value)
        values.append(value)
    return values, seconds


def checkpoints_within(candidates, evaluations) -> list[int]:
    """The candidate checkpoints not past ``evaluations``, or ``[evaluations]`` if none."""
    return [c for c in candidates if c <= evaluations] or [evaluations]


def median_suggest_s(runs) -> float:
    return statistics.median(s for r in runs for s in r["suggest_s"])


def curve_and_suggest_cell(key, checkpoints, digits):
    """A ``print_median_table`` cell: the median over runs of curve ``key`` at each
    checkpoint, with ``digits`` decimals, and the median suggest time in ms."""
    def cell(runs):
        medians = [statistics.median(r[key][c - 1] for r in runs) for c in checkpoints]
        return (" / ".join(f"{m:.{digits}f}" for m in medians)
                + f" ({1e3 * median_suggest_s(runs):.0f} ms)")

    return cell


def print_median_table(title, results, methods, names, cell) -> None:
    """A markdown table, one row per function in ``names`` and one column per method;
    ``cell`` makes a cell's text from the runs of that function and method."""
    print(title)
    print("| function | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for name in names:
        cells = [cell([r for r in results if r["function"] == name and r["method"] == method])
                 for method in methods]
        print(f"| {name} | " + " | ".join(cells) + " |")


def chapter_space():
    """The chapter's search space for the digits CNN."""
    import jhpo

    return {
        "learning_rate": jhpo.loguniform(1e-5, 1e-1),
        "momentum": jhpo.uniform(0.0, 0.99),
        "weight_decay": jhpo.loguniform(1e-9, 1e-2),
        "batch_size": jhpo.randint(8, 128),
    }


def time_told_asks(searcher, state, problem, repeats: int, clock):
    """Asks of one row, each told its value before the next: the median seconds of the
    later asks, the first ask's extra seconds (its compilation), and the final state."""
    import jax
    import jax.numpy as jnp

    seconds = []
    for i in range(repeats + 1):
        row, state, ask_seconds = timed_ask(searcher, state, jax.random.key(i), clock)
        seconds.append(ask_seconds)
        value = problem(problem.space.to_configs(row)[0])
        state = searcher.tell(state, row, jnp.asarray([value], jnp.float32))
    ask = statistics.median(seconds[1:])
    return ask, max(seconds[0] - ask, 0.0), state
