"""Tune a CNN's learning rate, momentum, weight decay and batch size, a population at a time.

By default: the small CNN on scikit-learn's 8x8 digits (no download), 64 random
configurations trained 16 at a time as one compiled program, 300 SGD steps each.
The chapter's full example is

    python examples/tune_cnn.py --dataset cifar10 --model resnet18

which needs CIFAR-10 prepared once (see the README). Running the same command
again with the same --out resumes the run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jhpo
from jhpo import tasks
from jhpo.runs.population import tune_population

CHAPTER_SPACE = {
    "learning_rate": jhpo.loguniform(1e-5, 1e-1),
    "momentum": jhpo.uniform(0.0, 0.99),
    "weight_decay": jhpo.loguniform(1e-9, 1e-2),
    "batch_size": jhpo.randint(8, 128),
}
DEFAULT_STEPS = {"digits": 300, "cifar10": 2000}


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tasks.DATASETS, default="digits")
    parser.add_argument("--model", choices=tasks.MODELS, default="cnn")
    parser.add_argument("--searcher", default="random", help="random, quasirandom, bo, ...")
    parser.add_argument("--trials", type=int, default=64, help="configurations to train in all")
    parser.add_argument("--population", type=int, default=16, help="configurations trained together")
    parser.add_argument("--steps", type=int, default=None, help="SGD steps per configuration "
                        f"(default: {DEFAULT_STEPS['digits']} on digits, {DEFAULT_STEPS['cifar10']} on cifar10)")
    parser.add_argument("--scheduler", choices=["asha", "hyperband", "median", "pbt"], default=None,
                        help="stop, refill or copy members as they train (default: train all fully)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run directory (default: runs/tune_<dataset>_<model>)")
    parser.add_argument("--chunk-size", type=int, default=None, help="train at most this many members at once")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir for CIFAR-10")
    return parser.parse_args(argv)


def main(argv=None) -> jhpo.Result:
    args = parse_arguments(argv)
    steps = args.steps or DEFAULT_STEPS[args.dataset]
    out = args.out or f"runs/tune_{args.dataset}_{args.model}" + (f"_{args.scheduler}" if args.scheduler else "")
    task = tasks.make(args.dataset, args.model, data_dir=args.data_dir)
    start = time.perf_counter()
    result = tune_population(
        task,
        CHAPTER_SPACE,
        searcher=args.searcher,
        population_size=args.population,
        num_trials=args.trials,
        steps=steps,
        seed=args.seed,
        run_dir=out,
        chunk_size=args.chunk_size,
        scheduler=args.scheduler,
    )
    seconds = time.perf_counter() - start
    errors = [t.value for t in result.completed]
    print(f"{len(result.trials)} trials of {task.name} ({steps} steps each) in {seconds:.0f} s; "
          f"{len(result.failed)} failed; run directory: {out}")
    if result.best is None:
        print("no configuration trained successfully")
        return result
    print(f"median validation error over trials: {statistics.median(errors):.4f}")
    print(f"best validation error: {result.best.value:.4f} (trial {result.best.trial_id})")
    print("best configuration:")
    for name, value in result.best.config.items():
        print(f"  {name} = {value:.4g}" if isinstance(value, float) else f"  {name} = {value}")
    return result


if __name__ == "__main__":
    main()
