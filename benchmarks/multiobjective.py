"""Hypervolume of jhpo's multi-objective BO (ParEGO) against random search and Optuna.

Problems: ZDT1 and ZDT2 in 6 dimensions and the Branin-Currin pair, from
``jhpo.problems``. Each method runs sequentially (ask one, tell one) for
``--evaluations`` evaluations and several seeds. Methods: jhpo ``bo`` with
``num_objectives=2``, jhpo ``random`` and, when optuna is installed, Optuna's
NSGA-II and its multi-objective TPE, both with default settings.

The hypervolume is that of all evaluations so far with respect to the problem's
reference point (ZDT: (11, 11), Branin-Currin: (18, 6)); the printed table gives
its median over seeds after 20, 35 and 50 evaluations (higher is better).

Problem ``digits_cnn``: the small CNN on scikit-learn's digits with objectives
validation error and parameter count, tuned over the chapter's four
hyperparameters and the CNN's ``width_multiplier`` (in [0.1, 1]) by
``jhpo.tune_population`` (populations of 10 trained as one program; jhpo bo and
random only). Its hypervolume is that of (validation error, parameters / the
full network's parameters) with reference (1, 1.1); its table gives the
median run time in seconds instead of the suggest time.

    python benchmarks/multiobjective.py [--quick] [--json PATH] [--seeds N] [--cpu N]
"""

from __future__ import annotations

import statistics
import time

from common import (add_cpu_argument, checkpoints_within, curve_and_suggest_cell, make_parser,
                    optuna_available, pin_cpu, print_median_table, run_jhpo_sequential,
                    run_optuna_sequential, versions, write_json)

SYNTHETIC_PROBLEMS = ["zdt1", "zdt2", "branin_currin"]
CNN = "digits_cnn"
ALL_PROBLEMS = SYNTHETIC_PROBLEMS + [CNN]
CNN_METHODS = ["bo", "random"]
CNN_REFERENCE = (1.0, 1.1)
# Quick: a narrower CNN and fewer steps and evaluations, to fit the script's time budget.
CNN_SETTINGS = {"quick": {"widths": (8, 16, 32), "steps": 100, "evaluations": 20},
                "full": {"widths": (16, 32, 64), "steps": 300, "evaluations": 50}}
CNN_POPULATION = 10


def parse_args():
    parser = make_parser(__doc__, "ZDT1, Branin-Currin and the digits CNN, 2 seeds, 30 evaluations "
                         "(20 for the CNN)",
                         "write every run's curve here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5)")
    parser.add_argument("--evaluations", type=int, default=None,
                        help="default 50 (for the CNN too; --quick: 30, CNN 20)")
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


def cnn_space():
    import jhpo
    from common import chapter_space

    return {**chapter_space(), "width_multiplier": jhpo.uniform(0.1, 1.0)}


def run_cnn(task, method, seed, settings, evaluations):
    """One ``tune_population`` run on the digits CNN: its objective points, normalised as
    the hypervolume takes them, in trial order (a failed trial at the reference point)."""
    from jhpo import tasks, tune_population

    full_size = int(tasks.SmallCNN(widths=settings["widths"]).num_params(1, 1.0))
    result = tune_population(task, cnn_space(), searcher=method, metric=["val_error", "num_params"],
                             population_size=CNN_POPULATION, num_trials=evaluations,
                             steps=settings["steps"], seed=seed, progress=False)
    trials = sorted(result.trials, key=lambda t: t.trial_id)
    return [[t.value[0], t.value[1] / full_size] if t.ok else list(CNN_REFERENCE) for t in trials]


def run_cnn_problem(args, seeds, results):
    """Every method and seed on the digits CNN; returns its evaluations per run."""
    from jhpo import tasks

    settings = CNN_SETTINGS["quick" if args.quick else "full"]
    evaluations = args.evaluations or settings["evaluations"]
    # One task for every run, so the runs share its compiled programs.
    task = tasks.digits_cnn(cnn_widths=settings["widths"])
    methods = [m for m in (args.methods or CNN_METHODS) if m in CNN_METHODS]
    for method in methods:
        for seed in range(seeds):
            started = time.perf_counter()
            points = run_cnn(task, method, seed, settings, evaluations)
            seconds = time.perf_counter() - started
            curve = hypervolume_curve(CNN_REFERENCE, points)
            results.append({"function": CNN, "method": method, "seed": seed, "hypervolume": curve,
                            "points": points, "run_s": seconds, "settings": settings})
            print(f"{CNN:14s} {method:13s} seed {seed}: final hypervolume {curve[-1]:9.4f}"
                  f"  ({seconds:5.1f} s)", flush=True)
    return methods, evaluations


def hypervolume_curve(reference, points):
    """Hypervolume of the first i points for every i, with one compiled program."""
    import jax.numpy as jnp
    import numpy as np

    from jhpo.pareto import hypervolume

    array = jnp.asarray(np.asarray(points, np.float32))
    reference = jnp.asarray(reference, jnp.float32)
    index = np.arange(len(points))
    return [float(hypervolume(array, reference, jnp.asarray(index < i + 1)))
            for i in range(len(points))]


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    from jhpo import problems

    names = args.problems or (["zdt1", "branin_currin", CNN] if args.quick else ALL_PROBLEMS)
    seeds = args.seeds or (2 if args.quick else 5)
    evaluations = args.evaluations or (30 if args.quick else 50)
    methods = args.methods or (["bo", "random"]
                               + (["optuna_nsga2", "optuna_motpe"] if optuna_available() else []))
    synthetic = [name for name in names if name != CNN]
    results = []
    for name in synthetic:
        problem = problems.get(name)
        for method in methods:
            runner = run_jhpo if method in ("bo", "random") else run_optuna
            for seed in range(seeds):
                started = time.perf_counter()
                points, seconds = runner(problem, method, seed, evaluations)
                curve = hypervolume_curve(problem.reference, points)
                results.append({"function": name, "method": method, "seed": seed,
                                "hypervolume": curve, "points": points, "suggest_s": seconds})
                print(f"{name:14s} {method:13s} seed {seed}: final hypervolume {curve[-1]:9.4f}"
                      f"  ({time.perf_counter() - started:5.1f} s)", flush=True)
    if CNN in names:
        cnn_methods, cnn_evaluations = run_cnn_problem(args, seeds, results)
    if synthetic:
        print_table(results, methods, synthetic, evaluations)
    if CNN in names:
        print_cnn_table(results, cnn_methods, cnn_evaluations)
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


def print_cnn_table(results, methods, evaluations):
    checkpoints = checkpoints_within((10, 20, 35, 50), evaluations)

    def cell(runs):
        medians = [statistics.median(r["hypervolume"][c - 1] for r in runs) for c in checkpoints]
        seconds = statistics.median(r["run_s"] for r in runs)
        return " / ".join(f"{m:.3f}" for m in medians) + f" ({seconds:.0f} s)"

    print_median_table(f"\nmedian hypervolume over seeds after {'/'.join(map(str, checkpoints))} "
                       "evaluations (higher is better); median run time in s",
                       results, methods, [CNN], cell)


if __name__ == "__main__":
    main()
