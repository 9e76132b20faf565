"""Best regret against cumulative evaluation cost: cost-aware BO against plain BO.

Problems (evaluation costs simulated as known functions, so that runs are fast):
  branin_cost           Branin whose cost rises 100-fold along x1 (1 s to 100 s);
  branin_costly_minima  Branin whose cost peaks at 100 s on each minimiser and is
                        about 1 s far from them: the adverse case.
Each method runs sequentially, for several seeds, until its cumulative cost reaches
``--budget`` seconds (or ``--evaluations``, a cap): the methods get the same budget
of cost, not of evaluations:
  bo_cost   jhpo ``bo`` with ``cost_aware=True``, told each evaluation's cost:
            LogEI minus the GP's expected log cost (EI per unit cost);
  bo_cost2  the same with ``cost_exponent=2``: LogEI minus twice the expected log cost;
  bo        jhpo ``bo``, cost-blind.

The table gives, per method, the median over seeds of the best log10 regret among
the evaluations finished within 100, 300 and 1000 s of cumulative cost, and the
median cumulative cost at which each run first reached the target: plain BO's
median final regret (a run that never reaches it counts as infinite). A last line
repeats that comparison as if plain BO had stopped at 100, 300 and 1000 s and at its
final cost, each as a fraction of that budget, because the fraction depends on it.

    python benchmarks/cost_aware.py [--quick] [--json PATH] [--seeds N] [--cpu N]
                                    [--problems NAME ...] [--methods NAME ...]
"""

from __future__ import annotations

import math
import statistics
import time

from common import add_cpu_argument, make_parser, pin_cpu, timed_ask, versions, write_json

REGRET_FLOOR = 1e-12
ALL_METHODS = ["bo_cost", "bo_cost2", "bo"]
ALL_PROBLEMS = ["branin_cost", "branin_costly_minima"]
COST_EXPONENTS = {"bo_cost": 1.0, "bo_cost2": 2.0}
COST_CHECKPOINTS = (100.0, 300.0, 1000.0)


def parse_args():
    parser = make_parser(__doc__, "2 seeds, budget 500 s", "write every run's curve here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 7)")
    parser.add_argument("--budget", type=float, default=None, help="seconds, default 1500")
    parser.add_argument("--evaluations", type=int, default=100, help="cap per run (100)")
    parser.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=None)
    parser.add_argument("--problems", nargs="+", choices=ALL_PROBLEMS, default=None,
                        help="default: both (--quick: branin_cost)")
    add_cpu_argument(parser)
    return parser.parse_args()


def evaluate(problem, config) -> tuple[float, float]:
    import jax

    with jax.enable_x64(True):
        return problem(config), float(problem.cost(config))


def run(problem, method, seed, budget, evaluations):
    """Each evaluation's (value, cost) until ``budget`` is spent, and the suggest times."""
    import jax
    import jax.numpy as jnp

    from jhpo.searchers import make

    cost_aware = method in COST_EXPONENTS
    options = {"cost_aware": True, "cost_exponent": COST_EXPONENTS[method]} if cost_aware else {}
    searcher = make("bo", problem.space, **options)
    key = jax.random.key(seed)
    state = searcher.init(key)
    evaluated, seconds, spent = [], [], 0.0
    for i in range(evaluations):
        if spent >= budget:
            break
        row, state, ask_seconds = timed_ask(searcher, state, jax.random.fold_in(key, i))
        seconds.append(ask_seconds)
        value, cost = evaluate(problem, problem.space.to_configs(row)[0])
        told = [[value, cost]] if cost_aware else [value]
        state = searcher.tell(state, row, jnp.asarray(told, jnp.float32))
        evaluated.append((value, cost))
        spent += cost
    return evaluated, seconds


def regret_and_cost_curves(problem, evaluated):
    """log10 best regret so far and cumulative cost, after each evaluation."""
    best, spent, regrets, costs = math.inf, 0.0, [], []
    for value, cost in evaluated:
        best, spent = min(best, value), spent + cost
        regrets.append(math.log10(max(problem.regret(best), REGRET_FLOOR)))
        costs.append(spent)
    return regrets, costs


def regret_at_cost(run_record, budget) -> float:
    """Best log10 regret among evaluations finished within ``budget``; inf if none."""
    within = [r for r, c in zip(run_record["log10_regret"], run_record["cumulative_cost"])
              if c <= budget]
    return within[-1] if within else math.inf


def cost_to_reach(run_record, target) -> float:
    for regret, cost in zip(run_record["log10_regret"], run_record["cumulative_cost"]):
        if regret <= target:
            return cost
    return math.inf


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    from jhpo import problems

    seeds = args.seeds or (2 if args.quick else 7)
    budget = args.budget or (500.0 if args.quick else 1500.0)
    methods = args.methods or ALL_METHODS
    names = args.problems or (ALL_PROBLEMS[:1] if args.quick else ALL_PROBLEMS)
    results = []
    for name in names:
        problem = problems.get(name)
        for method in methods:
            for seed in range(seeds):
                started = time.perf_counter()
                evaluated, seconds = run(problem, method, seed, budget, args.evaluations)
                regrets, costs = regret_and_cost_curves(problem, evaluated)
                results.append({"function": problem.name, "method": method, "seed": seed,
                                "log10_regret": regrets, "cumulative_cost": costs,
                                "suggest_s": seconds})
                print(f"{name} {method:8s} seed {seed}: final log10 regret {regrets[-1]:7.2f} "
                      f"at cost {costs[-1]:7.0f} s after {len(costs)} evaluations "
                      f"({time.perf_counter() - started:5.1f} s)", flush=True)
    for name in names:
        print(f"\n{name}")
        print_table([r for r in results if r["function"] == name], methods)
    if args.json:
        write_json(args.json, {"results": results, "versions": versions(),
                               "settings": {"seeds": seeds, "budget": budget,
                                            "max_evaluations": args.evaluations,
                                            "regret_floor": REGRET_FLOOR, "cpu": args.cpu}})


def print_table(results, methods):
    reference = "bo" if "bo" in methods else methods[0]
    target = statistics.median(r["log10_regret"][-1] for r in results if r["method"] == reference)
    print(f"\nmedian log10 regret over seeds at cumulative cost "
          f"{'/'.join(f'{c:g}' for c in COST_CHECKPOINTS)} s (lower is better); median cost to "
          f"reach {reference}'s median final log10 regret {target:.2f}; median total cost")
    print("| method | regret at cost | cost to target | total cost |")
    print("|---|---|---|---|")
    for method in methods:
        runs = [r for r in results if r["method"] == method]
        regrets = [statistics.median(regret_at_cost(r, c) for r in runs) for c in COST_CHECKPOINTS]
        reach = statistics.median(cost_to_reach(r, target) for r in runs)
        total = statistics.median(r["cumulative_cost"][-1] for r in runs)
        print(f"| {method} | " + " / ".join(f"{v:.2f}" for v in regrets)
              + f" | {reach:.0f} s | {total:.0f} s |")
    if reference == "bo":
        for method in [m for m in methods if m in COST_EXPONENTS]:
            print_budget_fractions(results, method)


def print_budget_fractions(results, method):
    """How the half-cost comparison depends on the budget: for plain BO stopped at each
    checkpoint within its budget, and at its final cost, ``method``'s median cost to
    reach plain BO's median regret there, as a fraction of that budget (at most 0.5:
    the target met at that budget)."""
    plain = [r for r in results if r["method"] == "bo"]
    aware = [r for r in results if r["method"] == method]
    budget = statistics.median(r["cumulative_cost"][-1] for r in plain)
    cells = []
    for checkpoint in [c for c in COST_CHECKPOINTS if c < budget] + [budget]:
        target = statistics.median(regret_at_cost(r, checkpoint) for r in plain)
        reach = statistics.median(cost_to_reach(r, target) for r in aware)
        cells.append(f"{checkpoint:.0f} s: {reach / checkpoint:.2f}")
    print(f"\n{method}'s cost to reach bo's median regret at a budget, as a fraction of that "
          "budget: " + ", ".join(cells))


if __name__ == "__main__":
    main()
