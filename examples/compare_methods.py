"""Compare HPO methods honestly: several seeds, the same budget, anytime curves.

    python examples/compare_methods.py                      # CNN on digits, population mode
    python examples/compare_methods.py --task digits-mlp    # 3 to 4 minutes on 2 CPU cores
    python examples/compare_methods.py --task branin --budget-s 5
    jhpo compare runs/compare_methods/digits-cnn

The default task tunes the small CNN of ``jhpo.tasks`` on the 8x8 digits (offline) with
``tune_population`` over the chapter's four hyperparameters (learning rate, momentum,
weight decay, batch size). Every method gets the same compute, ``--trials`` x
``--steps`` member-steps per run: random search, scrambled Halton (quasirandom) and GP-BO
train ``--trials`` configurations fully, ``--population`` at a time; ASHA starts
configurations until the budget is spent and stops most early, refilling their slots;
PBT trains ``--trials`` members, copying the best into the worst as they go. The figure
shows the incumbent's validation error against wall-clock time.

``--task digits-mlp`` trains a scikit-learn MLP per trial with ``jhpo.tune`` (black-box
mode, reporting each epoch, with random, quasirandom, BO, ASHA and BO + ASHA on the same
wall-clock budget); ``--task branin`` runs the searchers on Branin and plots regret on a
log scale.

Notes on fairness. Runs are interleaved (every method for seed 0, then seed 1, ...), so
slow and busy periods of a shared machine fall on all methods alike. BO's kernels are
compiled once per process and buffer size, which takes seconds on a CPU: without care,
whichever run first reaches a buffer size pays it, a whole budget of this small example.
So BO's kernels are compiled before the timed runs (a short throwaway BO run on a free
objective), and the figure shows steady-state wall-clock; ``--no-warmup`` measures the
cold start instead. Rerunning resumes: finished runs are skipped, while an interrupted
run gets its budget again from where it stopped.
"""

from __future__ import annotations

import argparse
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import jhpo
from jhpo import analysis, cli
from jhpo.experiment import Method, run_experiment, unfinished_runs

MAX_EPOCHS = 9
CHAPTER_SPACE = {
    "learning_rate": jhpo.loguniform(1e-5, 1e-1),
    "momentum": jhpo.uniform(0.0, 0.99),
    "weight_decay": jhpo.loguniform(1e-9, 1e-2),
    "batch_size": jhpo.randint(8, 128),
}


def digits_split(seed: int = 0):
    """The digits, split 70/30 into training and validation, standardised on training."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(
        features, labels, test_size=0.3, random_state=seed, stratify=labels)
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
    return (x_train - mean) / scale, (x_valid - mean) / scale, y_train, y_valid


class DigitsMLP:
    """Validation error of an SGD-trained MLP on digits, reported after every epoch."""

    name = "digits-mlp"

    def __init__(self):
        self.x_train, self.x_valid, self.y_train, self.y_valid = digits_split()
        self.classes = np.unique(self.y_train)

    def __call__(self, config: dict, report) -> dict:
        from sklearn.neural_network import MLPClassifier

        model = MLPClassifier(hidden_layer_sizes=(32,), solver="sgd",
                              learning_rate_init=config["learning_rate"],
                              momentum=config["momentum"], alpha=config["weight_decay"],
                              batch_size=config["batch_size"], nesterovs_momentum=False,
                              random_state=0)
        with warnings.catch_warnings():
            # Large learning rates overflow; the trial then simply reports a bad error.
            warnings.simplefilter("ignore", RuntimeWarning)
            for epoch in range(1, MAX_EPOCHS + 1):
                model.partial_fit(self.x_train, self.y_train, classes=self.classes)
                error = 1.0 - model.score(self.x_valid, self.y_valid)
                report(epoch, {"val_error": error})
        return {"val_error": error}


class Setup(NamedTuple):
    """Everything that differs between the example's tasks."""

    target: Any
    space: Any
    methods: list[Method]
    tuner: str
    settings: dict
    quantity: str  # what the figure shows: "value", or "regret" where the optimum is known
    title: str
    warm_up: Callable[[], None]


def searcher_methods() -> list[Method]:
    methods = [Method("random"), Method("quasirandom", searcher="quasirandom")]
    if importlib.util.find_spec("jhpo.searchers.bo") is not None:
        methods.append(Method("bo", searcher="bo"))
    return methods


def compile_bo_kernels(space, trials: int = 20) -> None:
    """Run BO briefly on a free objective so that its kernels are compiled for the buffer
    sizes (8, 16, 32 observations) the timed runs will reach."""
    jhpo.tune(lambda config: sum(float(v) for v in config.values()), space, searcher="bo",
              num_trials=trials, seed=0, progress=False)


def mlp_setup(args) -> Setup:
    methods = searcher_methods()
    if importlib.util.find_spec("jhpo.schedulers") is not None:
        rungs = {"min_resource": 1, "max_resource": MAX_EPOCHS, "eta": 3}
        methods.append(Method("asha", searcher="random", scheduler="asha", scheduler_options=rungs))
        if any(m.searcher == "bo" for m in methods):
            methods.append(Method("bo+asha", searcher="bo", scheduler="asha",
                                  scheduler_options=rungs))
    return Setup(DigitsMLP(), CHAPTER_SPACE, methods, "tune",
                 {"metric": "val_error", "max_wallclock_s": args.budget_s}, "value",
                 f"MLP on digits, 4 hyperparameters: {args.seeds} seeds x {args.budget_s:g} s "
                 "per run", lambda: compile_bo_kernels(CHAPTER_SPACE))


def branin_setup(args) -> Setup:
    from jhpo.problems import branin

    problem = branin()
    return Setup(problem, problem.space, searcher_methods(), "tune",
                 {"max_wallclock_s": args.budget_s}, "regret",
                 f"Branin: {args.seeds} seeds x {args.budget_s:g} s per run",
                 lambda: compile_bo_kernels(problem.space))


def cnn_setup(args) -> Setup:
    from jhpo import tasks
    from jhpo.population import steps_per_block
    from jhpo.runs.population import tune_population

    task = tasks.make("digits", "cnn")
    settings = {"population_size": args.population, "num_trials": args.trials,
                "steps": args.steps}

    def warm_up():
        # One BO run of two populations compiles the training program and BO's kernels.
        tune_population(task, CHAPTER_SPACE, searcher="bo", population_size=args.population,
                        num_trials=2 * args.population, steps=args.steps, seed=0,
                        progress=False)

    # Early stopping starts configurations until it has spent the member-steps that full
    # training of ``trials`` configurations takes; PBT trains ``population`` members.
    budget = {"num_trials": 4 * args.trials, "max_member_steps": args.trials * args.steps}
    methods = searcher_methods() + [
        Method("asha", scheduler="asha", options=budget,
               scheduler_options={"interval": steps_per_block(args.steps, 27)}),
        Method("pbt", scheduler="pbt", options={"population_size": args.trials},
               scheduler_options={"interval": steps_per_block(args.steps, 9)}),
    ]
    return Setup(task, CHAPTER_SPACE, methods, "tune_population", settings, "value",
                 f"CNN on digits: {args.seeds} seeds, {args.trials} x {args.steps} member-steps "
                 "per run", warm_up)


SETUPS = {"digits-mlp": mlp_setup, "branin": branin_setup, "digits-cnn": cnn_setup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits-cnn", choices=tuple(SETUPS),
                        help="what to tune (default: digits-cnn)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (default: 3)")
    parser.add_argument("--budget-s", type=float, default=8.0,
                        help="digits-mlp and branin: wall-clock seconds per run, the same for "
                             "every method (default: 8)")
    parser.add_argument("--trials", type=int, default=16,
                        help="digits-cnn: trials per run (default: 16)")
    parser.add_argument("--population", type=int, default=8,
                        help="digits-cnn: trials trained together (default: 8)")
    parser.add_argument("--steps", type=int, default=135,
                        help="digits-cnn: SGD steps per trial (default: 135)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="do not compile BO's kernels (and the population program) before "
                             "the timed runs")
    parser.add_argument("--out", default="runs/compare_methods",
                        help="parent of the experiment directory (default: runs/compare_methods)")
    args = parser.parse_args()

    setup = SETUPS[args.task](args)
    directory = Path(args.out) / args.task
    print(f"{args.task}: {', '.join(m.name for m in setup.methods)}; {args.seeds} seeds")
    to_run = unfinished_runs(directory, setup.methods, args.seeds)
    if args.warmup and any(method.searcher == "bo" for method, _ in to_run):
        setup.warm_up()
    record = run_experiment(setup.target, setup.space, setup.methods, args.seeds, directory,
                            tuner=setup.tuner, **setup.settings)

    from jhpo import plot

    for x, log_x in (("time", True), ("evals", False)):
        summary = analysis.summarise(record, x=x, quantity=setup.quantity, log_grid=log_x)
        figure = plot.anytime_figure(summary, title=setup.title, log_x=log_x)
        written = plot.save_figure(figure, directory / f"anytime_{x}.png")
        print("wrote", ", ".join(str(p) for p in written))
    print()
    print(cli.compare_table(str(directory), quantity=setup.quantity))


if __name__ == "__main__":
    main()
