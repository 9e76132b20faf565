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

import time

from common import (add_cpu_argument, checkpoints_within, curve_and_suggest_cell, make_parser,
                    optuna_available, pin_cpu, print_median_table, run_jhpo_sequential,
                    run_optuna_sequential, versions, write_json)

ALL_PROBLEMS = ["zdt1", "zdt2", "branin_currin"]


def parse_args():
    parser = make_parser(__doc__, "ZDT1 and Branin-Currin, 2 seeds, 30 evaluations",
                         "write every run's curve here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5)")
    parser.add_argument("--evaluations", type=int, default=None, help="default 50")
    parser.add_argument("--problems", nargs="+", choices=ALL_PROBLEMS, default=None)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of: bo random optuna_nsga2 optuna_motpe")
    add_cpu_argument(parser)
    return parser.parse_args()


def run_jhpo(problem, method, seed, evaluations):
    from jhpo.searchers import make

    searcher = make(method, problem.space, num_objectives=len(problem.reference))
    return run_jhpo_sequential(searcher, problem, seed, evaluations)


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
    return run_optuna_sequential(study, distributions, problem, evaluations)


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


def main():
    args = parse_args()
    pin_cpu(args.cpu)
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
        write_json(args.json, {"results": results, "versions": versions(extras=("optuna",)),
                               "settings": {"seeds": seeds, "evaluations": evaluations,
                                            "cpu": args.cpu}})


def print_table(results, methods, names, evaluations):
    checkpoints = checkpoints_within((20, 35, 50), evaluations)
    print_median_table(f"\nmedian hypervolume over seeds after {'/'.join(map(str, checkpoints))} "
                       "evaluations (higher is better); median suggest time in ms",
                       results, methods, names,
                       curve_and_suggest_cell("hypervolume", checkpoints, 3))


if __name__ == "__main__":
    main()
