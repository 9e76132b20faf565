"""BO's liar (the provisional value of a pending row), compared where it matters.

Batch: ``Optimizer.ask(8)`` then tell, 7 rounds (56 evaluations), on the synthetic
problems; median over seeds of the log10 regret of the best value, per liar.

Asynchronous: the time-to-target run of ``benchmarks/workers.py`` (Branin sleeping 0.2 s
to 2 s, 4 local workers) with each liar, against one worker (where no row is ever pending,
so the liar does not matter); median over seeds of the seconds to a regret of 1, 0.1 and
0.01, and the ratio of the 4-worker median to the 1-worker median. Each liar's kernels are
compiled before anything is timed.

    python benchmarks/bo_liar.py [--quick] [--json PATH] [--cpu N] [--seeds N]
                                 [--liars L ...] [--parts batch async] [--budget-s S]
                                 [--bo-options JSON]
"""

from __future__ import annotations

import json
import math
import statistics
import time

import workers as sleeping
from common import add_cpu_argument, make_parser, pin_cpu, versions, write_json

LIARS = ("believer", "best", "mean", "worst")
BATCH_PROBLEMS = ("branin", "hartmann6", "ackley5", "rosenbrock4")
BATCH_SIZE = 8
BATCH_ROUNDS = 7


def parse_args():
    parser = make_parser(__doc__, "2 seeds, two problems, a 30 s budget",
                         "write every measurement here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (5; quick 2)")
    parser.add_argument("--liars", nargs="+", choices=LIARS, default=list(LIARS))
    parser.add_argument("--parts", nargs="+", choices=["batch", "async"], default=["batch", "async"])
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-clock budget of one asynchronous run (60; quick 30)")
    parser.add_argument("--bo-options", type=json.loads, default={},
                        help='more options of bo as JSON, e.g. \'{"trust_region": false}\'')
    add_cpu_argument(parser)
    return parser.parse_args()


def batch_log_regret(problem, liar: str, seed: int, bo_options: dict) -> float:
    import jhpo

    optimizer = jhpo.Optimizer(problem.space, "bo", seed=seed,
                               searcher_options={**bo_options, "liar": liar})
    best = math.inf
    for _ in range(BATCH_ROUNDS):
        configs = optimizer.ask(BATCH_SIZE)
        values = [problem(config) for config in configs]
        optimizer.tell(configs, values)
        best = min(best, *values)
    return math.log10(max(problem.regret(best), 1e-12))


def batch_part(problem_names, liars, seeds: int, bo_options: dict) -> list[dict]:
    from jhpo import problems

    rows = []
    for name in problem_names:
        problem = getattr(problems, name)()
        for liar in liars:
            regrets = [batch_log_regret(problem, liar, seed, bo_options) for seed in range(seeds)]
            rows.append({"problem": name, "liar": liar, "log10_regrets": regrets,
                         "median": statistics.median(regrets)})
            print(f"batch {name:12s} {liar:9s} median log10 regret {rows[-1]['median']:7.2f}",
                  flush=True)
    return rows


def async_run(liar: str | None, workers: int, seed: int, budget_s: float,
              bo_options: dict) -> dict:
    import jhpo

    options = bo_options if liar is None else {**bo_options, "liar": liar}
    began = time.time()
    result = jhpo.tune(sleeping.sleeping_branin, sleeping.branin_space(), searcher="bo",
                       searcher_options=options, num_trials=1000, max_wallclock_s=budget_s,
                       seed=seed, workers=workers, progress=False)
    return {"liar": liar, "workers": workers, "seed": seed, "trials": len(result.trials),
            "seconds_to_targets": sleeping.seconds_to_targets(result.trials, began)}


def compile_liar(liar: str, bo_options: dict) -> None:
    """Run each liar once on 4 workers of an instant objective, so the buffer sizes a
    timed run reaches are compiled for its kernels beforehand."""
    import jhpo

    jhpo.tune(sleeping.branin, sleeping.branin_space(), searcher="bo",
              searcher_options={**bo_options, "liar": liar}, num_trials=260, workers=4, progress=False)


def async_part(liars, seeds: int, budget_s: float, bo_options: dict) -> list[dict]:
    for liar in liars:
        compile_liar(liar, bo_options)
    # seeds outermost, so that a change in the machine's load falls on every liar alike
    return [async_run(liar, workers, seed, budget_s, bo_options) for seed in range(seeds)
            for liar, workers in [(None, 1)] + [(liar, 4) for liar in liars]]


def print_async(runs: list[dict]) -> None:
    def medians(liar, workers):
        chosen = [run for run in runs if run["liar"] == liar and run["workers"] == workers]
        return [sleeping.median_or_none([run["seconds_to_targets"][i] for run in chosen])
                for i in range(len(sleeping.TARGETS))]

    sequential = medians(None, 1)
    print("\nasync, median seconds to regret " + " / ".join(f"{t:g}" for t in sleeping.TARGETS))
    print(f"  1 worker            {cells(sequential, sequential)}")
    for liar in dict.fromkeys(run["liar"] for run in runs if run["workers"] == 4):
        print(f"  4 workers {liar:9s} {cells(medians(liar, 4), sequential)}")


def cells(seconds, sequential) -> str:
    def cell(value, reference):
        if value is None:
            return "-"
        ratio = f" ({value / reference:.2f})" if reference else ""
        return f"{value:.1f}{ratio}"

    return " | ".join(cell(v, r) for v, r in zip(seconds, sequential))


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    seeds = args.seeds or (2 if args.quick else 5)
    budget_s = args.budget_s or (30.0 if args.quick else 60.0)
    payload = {"versions": versions(), "quick": args.quick, "seeds": seeds,
               "bo_options": args.bo_options}
    if "batch" in args.parts:
        problem_names = BATCH_PROBLEMS[:2] if args.quick else BATCH_PROBLEMS
        payload["batch"] = batch_part(problem_names, args.liars, seeds, args.bo_options)
    if "async" in args.parts:
        payload["async"] = async_part(args.liars, seeds, budget_s, args.bo_options)
        print_async(payload["async"])
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
