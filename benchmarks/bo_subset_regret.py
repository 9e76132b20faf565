"""Regret of BO when its GPs condition on a subset of the observations, against the exact GP.

Beyond ``model_rows`` observations the ``bo`` searcher conditions its GPs on
``model_rows`` of them: the best ``targets.BEST_SHARE`` by the objective and a random draw
of the rest. Population-scale buffers (thousands of rows against a subset of 256) are too
slow to run to convergence here, so this runs the same searcher at a smaller scale, where
the subset is a similar share of the data: sequential BO on a test function with a small
``model_rows`` against the exact GP (``model_rows`` above the budget), and with the best
share at 0 (a random subset), 0.5 (the default) and 1 (the best rows only). Each variant
runs in a process of its own, because the share is read when the kernels are compiled.
Reported: the median over seeds of the log10 regret after each checkpoint, and the
median of the exact GP's minus each variant's (positive: the variant is behind).

    python benchmarks/bo_subset_regret.py [--quick] [--json PATH] [--cpu N] [--seeds N]
        [--evaluations N] [--model-rows N] [--problem NAME]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys

from common import add_cpu_argument, make_parser, pin_cpu, run_jhpo_sequential, versions, write_json

# (name, model_rows or None for the exact GP, best share)
VARIANTS = [("exact", None, 0.5), ("random", "small", 0.0), ("best+random", "small", 0.5),
            ("best", "small", 1.0)]


def parse_args():
    parser = make_parser(__doc__, "1 seed, 60 evaluations, model_rows 16",
                         "write the curves here")
    add_cpu_argument(parser)
    parser.add_argument("--seeds", type=int, default=None, help="seeds per variant (default 4)")
    parser.add_argument("--evaluations", type=int, default=None, help="default 200")
    parser.add_argument("--model-rows", type=int, default=None, help="default 32")
    parser.add_argument("--problem", default="hartmann6", help="a function of jhpo.problems")
    # Internal: run one variant in this process and print its curves as JSON.
    parser.add_argument("--variant", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def run_variant(args):
    from jhpo import problems
    from jhpo.searchers.bo import bo, targets

    name, rows, share = VARIANTS[args.variant]
    targets.BEST_SHARE = share  # read at trace time, before anything compiles here
    problem = getattr(problems, args.problem)()
    model_rows = args.model_rows if rows == "small" else 2 * args.evaluations
    curves = []
    for seed in range(args.seeds):
        searcher = bo(problem.space, model_rows=model_rows)
        values, _ = run_jhpo_sequential(searcher, problem, seed, args.evaluations)
        best = [min(values[:i + 1]) for i in range(len(values))]
        curves.append([math.log10(max(problem.regret(b), 1e-12)) for b in best])
    print(json.dumps({"variant": name, "model_rows": model_rows, "best_share": share,
                      "log10_regret": curves}))


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    args.seeds = args.seeds or (1 if args.quick else 4)
    args.evaluations = args.evaluations or (60 if args.quick else 200)
    args.model_rows = args.model_rows or (16 if args.quick else 32)
    if args.variant is not None:
        return run_variant(args)
    results = []
    for index in range(len(VARIANTS)):
        command = [sys.executable, os.path.abspath(__file__), "--variant", str(index),
                   "--seeds", str(args.seeds), "--evaluations", str(args.evaluations),
                   "--model-rows", str(args.model_rows), "--problem", args.problem]
        command += [] if args.cpu is None else ["--cpu", str(args.cpu)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{results[-1]['variant']} done", flush=True)
    checkpoints = sorted({c for c in (50, 100, 150, 200, args.evaluations)
                          if c <= args.evaluations})
    exact = results[0]["log10_regret"]
    print(f"\n{args.problem}: median log10 regret over {args.seeds} seeds after "
          f"{' / '.join(map(str, checkpoints))} evaluations; model_rows {args.model_rows}")
    print("| variant | median log10 regret | median (variant - exact) |")
    print("|---|---|---|")
    for result in results:
        curves = result["log10_regret"]
        medians = [statistics.median(c[k - 1] for c in curves) for k in checkpoints]
        gaps = [statistics.median(v[k - 1] - e[k - 1] for v, e in zip(curves, exact))
                for k in checkpoints]
        print(f"| {result['variant']} | " + " / ".join(f"{m:.2f}" for m in medians)
              + " | " + " / ".join(f"{g:+.2f}" for g in gaps) + " |")
    write_json(args.json, {"results": results, "checkpoints": checkpoints,
                           "settings": vars(args), "versions": versions(), "load": os.getloadavg()})


if __name__ == "__main__":
    main()
