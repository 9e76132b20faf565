"""Best feasible regret of constrained BO against plain BO that discards infeasible
results, and against random search.

Problems: Branin with a disc constraint and Gardner's constrained problem, from
``jhpo.problems``. Each method runs sequentially (ask one, tell one) for
``--evaluations`` evaluations and several seeds. Methods:
  bo          jhpo ``bo`` with ``num_constraints``: constraint GPs, LogEI plus the log
              probability of feasibility, feasibility first;
  bo_discard  jhpo ``bo`` told only the objective of feasible trials; an infeasible
              trial is dropped from its pending rows and never told;
  bo_failed   jhpo ``bo`` told only the objective, an infeasible trial as failed (NaN,
              which plain BO reads as the worst value seen): a stronger baseline;
  random      jhpo ``random``.

Regret is the best feasible value so far minus the known feasible optimum, floored
at 1e-12 before the log10; before the first feasible trial it is infinite. The table
gives the median over seeds of log10 regret after 10, 20 and 40 evaluations, and how
many of the evaluations were feasible (median).

    python benchmarks/constrained.py [--quick] [--json PATH] [--seeds N] [--cpu N]
"""

from __future__ import annotations

import math
import statistics
import time

from common import (add_cpu_argument, checkpoints_within, make_parser, pin_cpu,
                    print_median_table, timed_ask, versions, write_json)

REGRET_FLOOR = 1e-12
ALL_PROBLEMS = ["branin_disc", "gardner"]
ALL_METHODS = ["bo", "bo_discard", "bo_failed", "random"]


def parse_args():
    parser = make_parser(__doc__, "2 seeds, 20 evaluations", "write every run's curve here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 7)")
    parser.add_argument("--evaluations", type=int, default=None, help="default 40")
    parser.add_argument("--problems", nargs="+", choices=ALL_PROBLEMS, default=None)
    parser.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=None)
    add_cpu_argument(parser)
    return parser.parse_args()


def evaluate(problem, config) -> tuple[float, list[float]]:
    import jax

    with jax.enable_x64(True):
        return problem(config), problem.constraint_values(config)


def run(problem, method, seed, evaluations):
    """Each evaluation's (objective, constraint values), and the suggest times."""
    import jax
    import jax.numpy as jnp

    from jhpo.searchers import make
    from jhpo.searchers.base import remove_rows

    num_constraints = len(problem.constraint_values(problem.argmin))
    options = {"num_constraints": num_constraints} if method in ("bo", "random") else {}
    searcher = make("bo" if method.startswith("bo") else method, problem.space, **options)
    key = jax.random.key(seed)
    state = searcher.init(key)
    evaluated, seconds = [], []
    for i in range(evaluations):
        row, state, ask_seconds = timed_ask(searcher, state, jax.random.fold_in(key, i))
        seconds.append(ask_seconds)
        value, constraints = evaluate(problem, problem.space.to_configs(row)[0])
        feasible = all(c > 0 for c in constraints)
        if method == "bo_discard":
            if feasible:
                state = searcher.tell(state, row, jnp.asarray([value], jnp.float32))
            else:
                state = state._replace(pending=remove_rows(state.pending, row))
        elif method == "bo_failed":
            told = jnp.asarray([value if feasible else math.nan], jnp.float32)
            state = searcher.tell(state, row, told)
        else:
            told = jnp.asarray([[value, *constraints]], jnp.float32)
            state = searcher.tell(state, row, told)
        evaluated.append((value, constraints))
    return evaluated, seconds


def log10_feasible_regret_curve(problem, evaluated):
    """log10 regret of the best feasible value so far; None before the first feasible."""
    best, curve = math.inf, []
    for value, constraints in evaluated:
        if all(c > 0 for c in constraints):
            best = min(best, value)
        curve.append(None if best == math.inf
                     else math.log10(max(problem.regret(best), REGRET_FLOOR)))
    return curve


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    from jhpo import problems

    names = args.problems or ALL_PROBLEMS
    seeds = args.seeds or (2 if args.quick else 7)
    evaluations = args.evaluations or (20 if args.quick else 40)
    methods = args.methods or ALL_METHODS
    results = []
    for name in names:
        problem = problems.get(name)
        for method in methods:
            for seed in range(seeds):
                started = time.perf_counter()
                evaluated, seconds = run(problem, method, seed, evaluations)
                curve = log10_feasible_regret_curve(problem, evaluated)
                feasible = sum(all(c > 0 for c in cs) for _, cs in evaluated)
                results.append({"function": name, "method": method, "seed": seed,
                                "log10_regret": curve, "feasible": feasible,
                                "suggest_s": seconds})
                final = "none feasible" if curve[-1] is None else f"{curve[-1]:7.2f}"
                print(f"{name:12s} {method:11s} seed {seed}: final log10 regret {final}, "
                      f"{feasible}/{evaluations} feasible ({time.perf_counter() - started:5.1f} s)",
                      flush=True)
    print_table(results, methods, names, evaluations)
    if args.json:
        write_json(args.json, {"results": results, "versions": versions(),
                               "settings": {"seeds": seeds, "evaluations": evaluations,
                                            "regret_floor": REGRET_FLOOR, "cpu": args.cpu}})


def median_regret(runs, checkpoint) -> float:
    return statistics.median(math.inf if r["log10_regret"][checkpoint - 1] is None
                             else r["log10_regret"][checkpoint - 1] for r in runs)


def print_table(results, methods, names, evaluations):
    checkpoints = checkpoints_within((10, 20, 40), evaluations)

    def cell(runs):
        medians = [median_regret(runs, c) for c in checkpoints]
        feasible = statistics.median(r["feasible"] for r in runs)
        return " / ".join(f"{m:.2f}" for m in medians) + f" ({feasible:g} feasible)"

    print_median_table(f"\nmedian log10 feasible regret over seeds after "
                       f"{'/'.join(map(str, checkpoints))} evaluations (lower is better; inf: "
                       "nothing feasible yet); median feasible evaluations",
                       results, methods, names, cell)


if __name__ == "__main__":
    main()
