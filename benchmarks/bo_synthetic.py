"""Best-so-far regret of jhpo's searchers against random search (and Optuna when installed).

Problems: Branin, Hartmann-6, Ackley-5 (optimum moved off centre),
Rosenbrock-4, a mixed float / log-float / integer / categorical problem, and
the multimodal Rastrigin-4, Schwefel-4, Michalewicz-5 and Griewank-6, from
``jhpo.problems``. Each method runs sequentially (ask one, tell one) for
``--evaluations`` evaluations and several seeds. Methods: jhpo ``bo``, ``tpe``,
``cmaes`` (when evosax, the ``cmaes`` extra, is installed) and ``random`` and,
when optuna (the ``bench`` extra) and torch are installed, Optuna's
multivariate TPE and its GPSampler, all with default settings (``optuna_tpe``
needs no torch: name it in ``--methods``).

Regret is the best value so far minus the known optimum, floored at 1e-12
before the log10 (objectives are evaluated in float64). The printed table
gives the median over seeds of log10 regret after 20, 40 and 60 evaluations
(and 100 and 200 when the runs are that long).

    python benchmarks/bo_synthetic.py [--quick] [--json PATH] [--seeds N] [--first-seed N]
        [--bo-options JSON] [--tpe-options JSON] [--label NAME] [--cpu N]
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import math
import time

from common import (add_cpu_argument, checkpoints_within, curve_and_suggest_cell, make_parser,
                    modules_available, optuna_available, pin_cpu, print_median_table,
                    run_jhpo_sequential, run_optuna_sequential, versions, write_json)

REGRET_FLOOR = 1e-12
ALL_PROBLEMS = ["branin", "hartmann6", "ackley5", "rosenbrock4", "mixed",
                "rastrigin4", "schwefel4", "michalewicz5", "griewank6"]
JHPO_METHODS = ("bo", "tpe", "cmaes", "random")


def parse_args():
    parser = make_parser(__doc__, "Branin and the mixed problem, 2 seeds, 30 evaluations",
                         "write every run's curve here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5)")
    parser.add_argument("--evaluations", type=int, default=None, help="default 60")
    parser.add_argument("--problems", nargs="+", choices=ALL_PROBLEMS, default=None)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of: bo tpe cmaes random optuna_tpe optuna_gp")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the seeds run are first-seed, first-seed + 1, ...")
    parser.add_argument("--tpe-options", type=json.loads, default={}, metavar="JSON",
                        help='options of the tpe searcher, e.g. \'{"num_candidates": 24}\'')
    parser.add_argument("--bo-options", type=json.loads, default={},
                        help='options of jhpo\'s bo as JSON, e.g. \'{"incumbent": "mean"}\'')
    parser.add_argument("--label", default=None,
                        help="saved with --json: a name for this bo setting or checkout")
    add_cpu_argument(parser)
    return parser.parse_args()


def run_jhpo(problem, method, seed, evaluations, options=None):
    from jhpo.searchers import make

    return run_jhpo_sequential(make(method, problem.space, **(options or {})), problem, seed,
                               evaluations)


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
    return run_optuna_sequential(study, optuna_distributions(problem.space), problem, evaluations)


def installed_versions(*names):
    """The installed version of each of the distributions ``names`` that is installed."""
    return {name: importlib.metadata.version(name) for name in names if modules_available(name)}


def log10_regret_curve(problem, values):
    best, curve = math.inf, []
    for value in values:
        best = min(best, value)
        curve.append(math.log10(max(problem.regret(best), REGRET_FLOOR)))
    return curve


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    from jhpo import problems

    names = args.problems or (["branin", "mixed"] if args.quick else ALL_PROBLEMS)
    seeds = args.seeds or (2 if args.quick else 5)
    evaluations = args.evaluations or (30 if args.quick else 60)
    methods = args.methods or (["bo", "tpe"] + (["cmaes"] if modules_available("evosax") else [])
                               + ["random"]
                               + (["optuna_tpe", "optuna_gp"] if optuna_available(torch=True) else []))
    searcher_options = {"bo": args.bo_options, "tpe": args.tpe_options}
    results = []
    for name in names:
        problem = problems.get(name)
        for method in methods:
            runner = run_jhpo if method in JHPO_METHODS else run_optuna
            if method in searcher_options:
                runner = functools.partial(run_jhpo, options=searcher_options[method])
            for seed in range(args.first_seed, args.first_seed + seeds):
                started = time.perf_counter()
                values, seconds = runner(problem, method, seed, evaluations)
                curve = log10_regret_curve(problem, values)
                results.append({"function": name, "method": method, "seed": seed,
                                "log10_regret": curve, "suggest_s": seconds})
                print(f"{name:12s} {method:11s} seed {seed}: final log10 regret {curve[-1]:7.2f}"
                      f"  ({time.perf_counter() - started:5.1f} s)", flush=True)
    print_table(results, methods, names, evaluations)
    if args.json:
        write_json(args.json, {"results": results,
                               "versions": {**versions(devices=True),
                                            **installed_versions("optuna", "torch", "evosax")},
                               "settings": {"seeds": seeds, "first_seed": args.first_seed,
                                            "bo_options": args.bo_options,
                                            "tpe_options": args.tpe_options,
                                            "label": args.label, "evaluations": evaluations,
                                            "regret_floor": REGRET_FLOOR, "cpu": args.cpu}})


def print_table(results, methods, names, evaluations):
    checkpoints = checkpoints_within((20, 40, 60, 100, 200), evaluations)
    print_median_table(f"\nmedian log10 regret over seeds after {'/'.join(map(str, checkpoints))} "
                       "evaluations (lower is better); median suggest time in ms",
                       results, methods, names,
                       curve_and_suggest_cell("log10_regret", checkpoints, 2))


if __name__ == "__main__":
    main()
