"""Trade validation error against network size: a Pareto front of the digits CNN.

The CNN's ``width_multiplier`` narrows every layer, so each configuration has a
size (``num_params``, reported by the task) as well as an error. Both are
minimised; the answer is the set of configurations no other beats on both, drawn
to ``<out>/front.png``. A few minutes on two CPU cores (48 configurations, 16 at a
time, 200 steps each):

    python examples/accuracy_vs_size.py [--searcher bo] [--trials 48]
"""

from __future__ import annotations

import argparse
import os

import jhpo
from jhpo import tasks
from jhpo.runs.population import tune_population

SPACE = {
    "learning_rate": jhpo.loguniform(1e-3, 1e-1),
    "momentum": jhpo.uniform(0.0, 0.99),
    "weight_decay": jhpo.loguniform(1e-9, 1e-2),
    "batch_size": jhpo.randint(16, 64),
    "width_multiplier": jhpo.uniform(0.1, 1.0),
}


def main(argv=None) -> jhpo.Result:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searcher", default="bo", help="bo (ParEGO scalarisations), random, ...")
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="runs/accuracy_vs_size")
    args = parser.parse_args(argv)

    result = tune_population(tasks.digits_cnn(), SPACE, searcher=args.searcher,
                             metric=["val_error", "num_params"], mode=["min", "min"],
                             population_size=args.population, num_trials=args.trials,
                             steps=args.steps, run_dir=args.out)
    front = sorted(result.pareto_front(), key=lambda t: t.value[1])
    print(f"{len(front)} of {len(result.trials)} configurations are on the front:")
    for trial in front:
        error, size = trial.value
        print(f"  {int(size):6d} parameters  validation error {error:.4f}  "
              f"(width x{trial.config['width_multiplier']:.2f})")
    try:
        from jhpo import plot
    except ImportError:
        return result
    written = plot.save_figure(plot.pareto_figure(result, ["val_error", "num_params"]),
                               os.path.join(args.out, "front.png"))
    print("front drawn to", ", ".join(str(path) for path in written))
    return result


if __name__ == "__main__":
    main()
