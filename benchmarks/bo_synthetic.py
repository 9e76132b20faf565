"""Best-so-far regret of jhpo's BO against random search (and Optuna when installed).

Problems: Branin, Hartmann-6, Ackley-5 (optimum moved off centre),
Rosenbrock-4 and a mixed float / log-float / integer / categorical problem,
from ``jhpo.problems``. Each method runs sequentially (ask one, tell one) for
``--evaluations`` evaluations and several seeds. Methods: jhpo ``bo``, jhpo
``random`` and, when optuna (the ``bench`` extra) and torch are installed,
Optuna's multivariate TPE and its GPSampler, all with default settings.

Regret is the best value so far minus the known optimum, floored at 1e-12
before the log10 (objectives are evaluated in float64). The printed table
gives the median over seeds of log10 regret after 20, 40 and 60 evaluations.

    python benchmarks/bo_synthetic.py [--quick] [--json PATH] [--seeds N] [--cpu N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import time

REGRET_FLOOR = 1e-12
ALL_PROBLEMS = ["branin", "hartmann6", "ackley5", "rosenbrock4", "mixed"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="Branin and the mixed problem, 2 seeds, 30 evaluations")
    parser.add_argument("--json", metavar="PATH", help="write every run's curve here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5)")
    parser.add_argument("--evaluations", type=int, default=None, help="default 60")
    parser.add_argument("--problems", nargs="+", choices=ALL_PROBLEMS, default=None)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of: bo random optuna_tpe optuna_gp")
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this core")
    return parser.parse_args()


def optuna_available() -> bool:
    """Optuna is installed, and so is torch, which its GPSampler needs."""
    return all(importlib.util.find_spec(name) is not None for name in ("optuna", "torch"))


def evaluate(problem, config) -> float:
    import jax

    with jax.enable_x64(True):
        return problem(config)


def run_jhpo(problem, method, seed, evaluations):
    import jax
    import jax.numpy as jnp

    from jhpo.searchers import make

    searcher = make(method, problem.space)
    key = jax.random.key(seed)
    state = searcher.init(key)
    values, seconds = [], []
    for i in range(evaluations):
        start = time.perf_counter()
        row, state = searcher.ask(state, jax.random.fold_in(key, i), 1)
        jax.block_until_ready(row)
        seconds.append(time.perf_counter() - start)
        value = evaluate(problem, problem.space.to_configs(row)[0])
        state = searcher.tell(state, row, jnp.asarray([value], jnp.float32))
        values.append(value)
    return values, seconds


def optuna_distributions(space):
    import optuna

    from jhpo.space import Choice, Float, Int, Ordinal

    distributions = {}
    for name, domain in space.domains.items():
        if isinstance(domain, Float):
            distributions[name] = optuna.distributions.FloatDistribution(
                domain.lo, domain.hi, log=domain.log)
        elif isinstance(domain, Int):
            distributions[name] = optuna.distributions.IntDistribution(
                domain.lo, domain.hi, log=domain.log)
        elif isinstance(domain, (Choice, Ordinal)):
            distributions[name] = optuna.distributions.CategoricalDistribution(domain.values)
    return distributions


def run_optuna(problem, method, seed, evaluations):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if method == "optuna_tpe":
        sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed)
    else:
        sampler = optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    distributions = optuna_distributions(problem.space)
    values, seconds = [], []
    for _ in range(evaluations):
        start = time.perf_counter()
        trial = study.ask(distributions)
        seconds.append(time.perf_counter() - start)
        value = evaluate(problem, dict(trial.params))
        study.tell(trial, value)
        values.append(value)
    return values, seconds


def log10_regret_curve(problem, values):
    best, curve = math.inf, []
    for value in values:
        best = min(best, value)
        curve.append(math.log10(max(problem.regret(best), REGRET_FLOOR)))
    return curve


def versions():
    import jax
    import jaxlib

    import jhpo

    found = {"jhpo": jhpo.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
             "python": platform.python_version(), "devices": [str(d) for d in jax.devices()]}
    if optuna_available():
        import optuna
        import torch

        found.update(optuna=optuna.__version__, torch=torch.__version__)
    return found


def main():
    args = parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    from jhpo import problems

    names = args.problems or (["branin", "mixed"] if args.quick else ALL_PROBLEMS)
    seeds = args.seeds or (2 if args.quick else 5)
    evaluations = args.evaluations or (30 if args.quick else 60)
    methods = args.methods or (["bo", "random"]
                               + (["optuna_tpe", "optuna_gp"] if optuna_available() else []))
    results = []
    for name in names:
        problem = problems.get(name)
        for method in methods:
            runner = run_jhpo if method in ("bo", "random") else run_optuna
            for seed in range(seeds):
                started = time.perf_counter()
                values, seconds = runner(problem, method, seed, evaluations)
                curve = log10_regret_curve(problem, values)
                results.append({"function": name, "method": method, "seed": seed,
                                "log10_regret": curve, "suggest_s": seconds})
                print(f"{name:12s} {method:11s} seed {seed}: final log10 regret {curve[-1]:7.2f}"
                      f"  ({time.perf_counter() - started:5.1f} s)", flush=True)
    print_table(results, methods, names, evaluations)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"results": results, "versions": versions(),
                       "settings": {"seeds": seeds, "evaluations": evaluations,
                                    "regret_floor": REGRET_FLOOR, "cpu": args.cpu}},
                      handle, indent=1)


def print_table(results, methods, names, evaluations):
    checkpoints = [c for c in (20, 40, 60) if c <= evaluations] or [evaluations]
    print(f"\nmedian log10 regret over seeds after {'/'.join(map(str, checkpoints))} evaluations"
          " (lower is better); median suggest time in ms")
    print("| function | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for name in names:
        cells = []
        for method in methods:
            runs = [r for r in results if r["function"] == name and r["method"] == method]
            medians = [statistics.median(r["log10_regret"][c - 1] for r in runs)
                       for c in checkpoints]
            suggest = statistics.median(s for r in runs for s in r["suggest_s"])
            cells.append(" / ".join(f"{m:.2f}" for m in medians) + f" ({1e3 * suggest:.0f} ms)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
