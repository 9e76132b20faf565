"""Hypervolume of jhpo's multi-objective BO (ParEGO) against random search and Optuna.

Problems: ZDT1 and ZDT2 in 6 dimensions and the Branin-Currin pair, from
``jhpo.problems``. Each method runs sequentially (ask one, tell one) for
``--evaluations`` evaluations and several seeds. Methods: jhpo ``bo`` with
``num_objectives=2``, jhpo ``random`` and, when optuna is installed, Optuna's
NSGA-II and its multi-objective TPE, both with default settings.

The hypervolume is that of all evaluations so far with respect to the problem's
reference point (ZDT: (11, 11), Branin-Currin: (18, 6)); the printed table gives
its median over seeds after 20, 35 and 50 evaluations (higher is better).

    python benchmarks/multiobjective.py [--quick] [--json PATH] [--seeds N] [--cpu N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time

ALL_PROBLEMS = ["zdt1", "zdt2", "branin_currin"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="ZDT1 and Branin-Currin, 2 seeds, 30 evaluations")
    parser.add_argument("--json", metavar="PATH", help="write every run's curve here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5)")
    parser.add_argument("--evaluations", type=int, default=None, help="default 50")
    parser.add_argument("--problems", nargs="+", choices=ALL_PROBLEMS, default=None)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of: bo random optuna_nsga2 optuna_motpe")
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this core")
    return parser.parse_args()


def optuna_available() -> bool:
    return importlib.util.find_spec("optuna") is not None


def evaluate(problem, config) -> list[float]:
    import jax

    with jax.enable_x64(True):
        return problem(config)


def run_jhpo(problem, method, seed, evaluations):
    import jax
    import jax.numpy as jnp

    from jhpo.searchers import make

    searcher = make(method, problem.space, num_objectives=len(problem.reference))
    key = jax.random.key(seed)
    state = searcher.init(key)
    points, seconds = [], []
    for i in range(evaluations):
        start = time.perf_counter()
        row, state = searcher.ask(state, jax.random.fold_in(key, i), 1)
        jax.block_until_ready(row)
        seconds.append(time.perf_counter() - start)
        values = evaluate(problem, problem.space.to_configs(row)[0])
        state = searcher.tell(state, row, jnp.asarray([values], jnp.float32))
        points.append(values)
    return points, seconds


def run_optuna(problem, method, seed, evaluations):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if method == "optuna_nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed)
    study = optuna.create_study(sampler=sampler, directions=["minimize"] * len(problem.reference))
    distributions = {name: optuna.distributions.FloatDistribution(domain.lo, domain.hi)
                     for name, domain in problem.space.domains.items()}
    points, seconds = [], []
    for _ in range(evaluations):
        start = time.perf_counter()
        trial = study.ask(distributions)
        seconds.append(time.perf_counter() - start)
        values = evaluate(problem, dict(trial.params))
        study.tell(trial, values)
        points.append(values)
    return points, seconds


def hypervolume_curve(problem, points):
    """Hypervolume of the first i points for every i, with one compiled program."""
    import jax.numpy as jnp
    import numpy as np

    from jhpo.pareto import hypervolume

    array = jnp.asarray(np.asarray(points, np.float32))
    reference = jnp.asarray(problem.reference, jnp.float32)
    index = np.arange(len(points))
    return [float(hypervolume(array, reference, jnp.asarray(index < i + 1)))
            for i in range(len(points))]


def versions():
    import jax
    import jaxlib

    import jhpo

    found = {"jhpo": jhpo.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
             "python": platform.python_version()}
    if optuna_available():
        import optuna

        found["optuna"] = optuna.__version__
    return found


def main():
    args = parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    from jhpo import problems

    names = args.problems or (["zdt1", "branin_currin"] if args.quick else ALL_PROBLEMS)
    seeds = args.seeds or (2 if args.quick else 5)
    evaluations = args.evaluations or (30 if args.quick else 50)
    methods = args.methods or (["bo", "random"]
                               + (["optuna_nsga2", "optuna_motpe"] if optuna_available() else []))
    results = []
    for name in names:
        problem = problems.get(name)
        for method in methods:
            runner = run_jhpo if method in ("bo", "random") else run_optuna
            for seed in range(seeds):
                started = time.perf_counter()
                points, seconds = runner(problem, method, seed, evaluations)
                curve = hypervolume_curve(problem, points)
                results.append({"function": name, "method": method, "seed": seed,
                                "hypervolume": curve, "points": points, "suggest_s": seconds})
                print(f"{name:14s} {method:13s} seed {seed}: final hypervolume {curve[-1]:9.4f}"
                      f"  ({time.perf_counter() - started:5.1f} s)", flush=True)
    print_table(results, methods, names, evaluations)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"results": results, "versions": versions(),
                       "settings": {"seeds": seeds, "evaluations": evaluations, "cpu": args.cpu}},
                      handle, indent=1)


def print_table(results, methods, names, evaluations):
    checkpoints = [c for c in (20, 35, 50) if c <= evaluations] or [evaluations]
    print(f"\nmedian hypervolume over seeds after {'/'.join(map(str, checkpoints))} evaluations"
          " (higher is better); median suggest time in ms")
    print("| function | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for name in names:
        cells = []
        for method in methods:
            runs = [r for r in results if r["function"] == name and r["method"] == method]
            medians = [statistics.median(r["hypervolume"][c - 1] for r in runs)
                       for c in checkpoints]
            suggest = statistics.median(s for r in runs for s in r["suggest_s"])
            cells.append(" / ".join(f"{m:.3f}" for m in medians) + f" ({1e3 * suggest:.0f} ms)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
