"""Tune a noisy 2-D function: the smallest complete jhpo run.

    python examples/quickstart.py --searcher quasirandom --trials 60 --out runs/quickstart
"""

import argparse
import math
import random

import jhpo


def noisy_branin(config: dict) -> float:
    """Branin's function (minimum 0.397887) plus a little observation noise."""
    x, y = config["x"], config["y"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    value = (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10
    return value + random.gauss(0.0, 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searcher", default="random", help="random, quasirandom or bo")
    parser.add_argument("--trials", type=int, default=60, help="number of evaluations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run directory (resumes if it exists)")
    args = parser.parse_args()

    random.seed(args.seed)
    space = {"x": jhpo.uniform(-5.0, 10.0), "y": jhpo.uniform(0.0, 15.0)}
    result = jhpo.tune(noisy_branin, space, searcher=args.searcher, num_trials=args.trials,
                       seed=args.seed, run_dir=args.out)
    best = result.best
    print(f"best value {best.value:.4f} (optimum 0.3979) after {len(result.trials)} trials")
    print("best configuration:", best.config)


if __name__ == "__main__":
    main()
