"""Real tuning tasks: jhpo's searchers against random search and Optuna on scikit-learn models.

Each task cross-validates a scikit-learn model on one of its bundled datasets (nothing is
downloaded) over fixed folds, with the model's own seed fixed, so a configuration always
gets the same value. The tasks mix integer counts (trees, depth, leaves, neighbours,
units), log-scaled floats and choices, as real tuning does.

The score of a run after k evaluations is its best value so far, normalised per task:
0 is the best value a long random-plus-local search found (the reference), 1 the median
value of a random configuration. The reference values are computed once by
``--make-reference`` and cached in ``bo_ml_reference.json`` beside this file, with the
command that made them. The table gives, per task, the median over seeds of the
normalised score after 10, 20 and 40 evaluations, and the mean over tasks of those
medians.

Methods: jhpo ``bo``, ``tpe`` and ``random``; Optuna's GPSampler (``optuna_gp``, needs
torch) and multivariate TPESampler (``optuna_tpe``) when optuna is installed (the
``bench`` extra).

    python benchmarks/bo_ml.py [--quick] [--json PATH] [--seeds N] [--tasks ...] [--cpu N]
    python benchmarks/bo_ml.py --make-reference [--random-rows N] [--local-rows N]
    python benchmarks/bo_ml.py --table-from RUN.json [RUN.json ...]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings

# One thread per process: scikit-learn's OpenMP and BLAS pools stall each other on a
# loaded machine (histogram boosting took 200x longer with the default pools).
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402  (after the thread settings, which numpy reads on import)
from common import (add_cpu_argument, evaluate, make_parser, optuna_available,  # noqa: E402
                    pin_cpu, run_jhpo_sequential, versions, write_json)

REFERENCE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bo_ml_reference.json")
CHECKPOINTS = (10, 20, 40)
JHPO_METHODS = ("bo", "tpe", "random")
FOLDS = 3
BO_OPTIONS: dict = {}  # set by --bo-options


# ---------------------------------------------------------------------------- the tasks


class Task:
    """A named objective over a jhpo space: ``task(config)`` is the cross-validated loss."""

    def __init__(self, name, parameters, load, build, scoring):
        from jhpo.space import Space

        self.name = name
        self.space = Space(parameters)
        self._load = load
        self._build = build
        self._scoring = scoring
        self._data = None

    def __call__(self, config) -> float:
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

        if self._data is None:
            self._data = self._load()
        x, y, classify = self._data
        splitter = (StratifiedKFold if classify else KFold)(FOLDS, shuffle=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of short MLP / linear fits
            scores = cross_val_score(self._build(config), x, y, cv=splitter,
                                     scoring=self._scoring, error_score=np.nan)
        value = -float(np.mean(scores))  # scikit-learn's scores are "greater is better"
        return value if np.isfinite(value) else float("inf")


def _subsample(x, y, rows, seed=0):
    pick = np.random.default_rng(seed).permutation(len(y))[:rows]
    return x[pick], y[pick]


def _breast_cancer():
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return x, y, True


def _digits(rows):
    def load():
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x, y = _subsample(x / 16.0, y, rows)
        return x, y, True

    return load


def _diabetes():
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return x, y, False


def _wine():
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    x, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(x), y, True


def _random_forest(config):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=config["n_estimators"], max_depth=config["max_depth"],
        min_samples_split=config["min_samples_split"],
        min_samples_leaf=config["min_samples_leaf"], max_features=config["max_features"],
        random_state=0, n_jobs=1)


def _boosting(config):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        max_iter=config["max_iter"], max_depth=config["max_depth"],
        max_leaf_nodes=config["max_leaf_nodes"], min_samples_leaf=config["min_samples_leaf"],
        learning_rate=config["learning_rate"], l2_regularization=config["l2_regularization"],
        early_stopping=False, random_state=0)


def _extra_trees(config):
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(
        n_estimators=config["n_estimators"], max_depth=config["max_depth"],
        min_samples_leaf=config["min_samples_leaf"], max_features=config["max_features"],
        criterion=config["criterion"], random_state=0, n_jobs=1)


def _svc(config):
    from sklearn.svm import SVC

    return SVC(C=config["C"], gamma=config["gamma"])


def _elastic_net(config):
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    return make_pipeline(PolynomialFeatures(config["degree"], include_bias=False),
                         StandardScaler(),
                         ElasticNet(alpha=config["alpha"], l1_ratio=config["l1_ratio"],
                                    max_iter=2000))


def _mlp(config):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=(config["units"],) * config["layers"], alpha=config["alpha"],
        learning_rate_init=config["learning_rate_init"], max_iter=40, random_state=0)


def _knn(config):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(),
                         KNeighborsClassifier(n_neighbors=config["n_neighbors"],
                                              weights=config["weights"], p=config["p"]))


def make_tasks() -> dict[str, Task]:
    import jhpo

    tasks = [
        Task("forest_cancer", {
            "n_estimators": jhpo.randint(5, 40), "max_depth": jhpo.randint(1, 12),
            "min_samples_split": jhpo.randint(2, 30), "min_samples_leaf": jhpo.randint(1, 30),
            "max_features": jhpo.uniform(0.05, 1.0)}, _breast_cancer, _random_forest,
            "neg_log_loss"),
        Task("boosting_diabetes", {
            "max_iter": jhpo.randint(10, 120), "max_depth": jhpo.randint(1, 8),
            "max_leaf_nodes": jhpo.randint(2, 48), "min_samples_leaf": jhpo.randint(2, 80),
            "learning_rate": jhpo.loguniform(0.005, 0.5),
            "l2_regularization": jhpo.loguniform(1e-4, 100.0)}, _diabetes, _boosting,
            "neg_mean_squared_error"),
        Task("extratrees_wine", {
            "n_estimators": jhpo.randint(5, 60), "max_depth": jhpo.randint(1, 10),
            "min_samples_leaf": jhpo.randint(1, 40), "max_features": jhpo.randint(1, 13),
            "criterion": jhpo.choice(["gini", "entropy"])}, _wine, _extra_trees,
            "neg_log_loss"),
        Task("svc_digits", {"C": jhpo.loguniform(1e-3, 1e4), "gamma": jhpo.loguniform(1e-5, 1.0)},
             _digits(600), _svc, "accuracy"),
        Task("elasticnet_diabetes", {
            "alpha": jhpo.loguniform(1e-5, 10.0), "l1_ratio": jhpo.uniform(0.0, 1.0),
            "degree": jhpo.ordinal([1, 2, 3])}, _diabetes, _elastic_net,
            "neg_mean_squared_error"),
        Task("mlp_digits", {
            "units": jhpo.lograndint(4, 128), "layers": jhpo.randint(1, 3),
            "alpha": jhpo.loguniform(1e-6, 10.0),
            "learning_rate_init": jhpo.loguniform(1e-4, 0.3)}, _digits(300), _mlp,
            "neg_log_loss"),
        Task("knn_cancer", {
            "n_neighbors": jhpo.randint(1, 80), "weights": jhpo.choice(["uniform", "distance"]),
            "p": jhpo.ordinal([1, 2])}, _breast_cancer, _knn, "neg_log_loss"),
    ]
    return {task.name: task for task in tasks}


# ---------------------------------------------------------------------------- the reference


def reference_search(task: Task, random_rows: int, local_rows: int, seed: int = 12345) -> dict:
    """The median value of ``random_rows`` random configurations, and the best value of
    those and of ``local_rows`` more, each a perturbation of the best so far (greedy
    local search with Gaussian steps of random size in the unit cube)."""
    import jax
    import jax.numpy as jnp

    key = jax.random.key(seed)
    rows = task.space.sample(jax.random.fold_in(key, 0), random_rows)
    values = [evaluate(task, config) for config in task.space.to_configs(rows)]
    best_index = int(np.argmin(values))
    best_row, best = rows[best_index], values[best_index]
    for i in range(local_rows):
        scale_key, step_key = jax.random.split(jax.random.fold_in(key, i + 1))
        scale = jnp.exp(jax.random.uniform(scale_key, (), minval=np.log(0.01), maxval=np.log(0.3)))
        step = scale * jax.random.normal(step_key, best_row.shape)
        candidate = task.space.canonicalize(jnp.clip(best_row + step, 0.0, 1.0)[None])[0]
        value = evaluate(task, task.space.to_configs(candidate[None])[0])
        if value < best:
            best_row, best = candidate, value
    return {"best": float(best), "median_random": float(statistics.median(values)),
            "best_config": task.space.to_configs(best_row[None])[0]}


def make_reference(tasks, random_rows, local_rows) -> None:
    command = (f"python benchmarks/bo_ml.py --make-reference --random-rows {random_rows} "
               f"--local-rows {local_rows}")
    found = {}
    for name, task in tasks.items():
        started = time.perf_counter()
        found[name] = reference_search(task, random_rows, local_rows)
        print(f"{name:20s} best {found[name]['best']:.6g}  median random "
              f"{found[name]['median_random']:.6g}  ({time.perf_counter() - started:.0f} s)",
              flush=True)
    write_json(REFERENCE_PATH, {"command": command, "random_rows": random_rows,
                                "local_rows": local_rows, "tasks": found})


def load_reference() -> dict:
    with open(REFERENCE_PATH) as handle:
        return json.load(handle)["tasks"]


# ---------------------------------------------------------------------------- the runs


def run_method(task: Task, method: str, seed: int, evaluations: int):
    if method in JHPO_METHODS:
        from jhpo.searchers import make

        options = BO_OPTIONS if method == "bo" else {}
        return run_jhpo_sequential(make(method, task.space, **options), task, seed, evaluations)
    from bo_synthetic import run_optuna

    return run_optuna(task, method, seed, evaluations)


def normalised_curve(values, reference) -> list[float]:
    """Best value so far mapped so that the reference's best is 0 and the median random
    configuration 1."""
    span = reference["median_random"] - reference["best"]
    return [(best - reference["best"]) / span for best in np.minimum.accumulate(values)]


def median_at(runs, checkpoint) -> float:
    return statistics.median(r["normalised"][checkpoint - 1] for r in runs)


def print_table(results, methods, names, checkpoints) -> None:
    """A markdown table of the medians; a task missing a method's runs shows n/a there,
    and the mean row is over the tasks that every method has finished."""
    def runs_of(name, method):
        return [r for r in results if r["task"] == name and r["method"] == method]

    def cell(name, method):
        runs = runs_of(name, method)
        return " / ".join(f"{median_at(runs, c):.3f}" for c in checkpoints) if runs else "n/a"

    complete = [n for n in names if all(runs_of(n, m) for m in methods)]
    print(f"\nmedian normalised score over seeds after {'/'.join(map(str, checkpoints))} "
          "evaluations (0 = reference best, 1 = median random configuration; lower is better)")
    print("| task | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for name in names:
        print(f"| {name} | " + " | ".join(cell(name, m) for m in methods) + " |")
    if complete:
        means = [" / ".join(f"{statistics.mean(median_at(runs_of(n, m), c) for n in complete):.3f}"
                            for c in checkpoints) for m in methods]
        print(f"| **mean** ({len(complete)} tasks) | " + " | ".join(means) + " |")


def parse_args():
    parser = make_parser(__doc__, "three tasks, 3 seeds, 20 evaluations, no Optuna",
                         "write every run's curve here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5)")
    parser.add_argument("--evaluations", type=int, default=None, help="default 40")
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of: bo tpe random optuna_tpe optuna_gp")
    parser.add_argument("--make-reference", action="store_true",
                        help="recompute the reference values into "
                             + os.path.basename(REFERENCE_PATH))
    parser.add_argument("--random-rows", type=int, default=300)
    parser.add_argument("--local-rows", type=int, default=150)
    parser.add_argument("--bo-options", type=json.loads, default={},
                        help='options of jhpo\'s bo as JSON, e.g. \'{"explore_after": 10}\'')
    parser.add_argument("--label", default=None,
                        help="saved with --json: a name for this bo setting or checkout")
    parser.add_argument("--table-from", nargs="+", metavar="JSON",
                        help="print the table of runs saved with --json (several files merge)")
    add_cpu_argument(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.table_from:
        print_saved(args.table_from)
        return
    pin_cpu(args.cpu)
    BO_OPTIONS.update(args.bo_options)
    tasks = make_tasks()
    names = args.tasks or (["forest_cancer", "elasticnet_diabetes", "svc_digits"] if args.quick
                           else list(tasks))
    unknown = sorted(set(names) - set(tasks))
    if unknown:
        sys.exit(f"unknown tasks {unknown}; known: {sorted(tasks)}")
    if args.make_reference:
        make_reference({name: tasks[name] for name in names}, args.random_rows, args.local_rows)
        return
    reference = load_reference()
    seeds = args.seeds or (3 if args.quick else 5)
    evaluations = args.evaluations or (20 if args.quick else 40)
    optuna_methods = ((["optuna_tpe"] if optuna_available() else [])
                      + (["optuna_gp"] if optuna_available(torch=True) else []))
    methods = args.methods or (["bo", "tpe", "random"] + ([] if args.quick else optuna_methods))
    results = []
    for name in names:
        for method in methods:
            for seed in range(seeds):
                started = time.perf_counter()
                values, seconds = run_method(tasks[name], method, seed, evaluations)
                curve = normalised_curve(values, reference[name])
                results.append({"task": name, "method": method, "seed": seed, "values": values,
                                "normalised": curve, "suggest_s": seconds})
                print(f"{name:20s} {method:11s} seed {seed}: normalised {curve[-1]:7.3f}"
                      f"  ({time.perf_counter() - started:5.1f} s)", flush=True)
                # Written after every run, so a long run interrupted keeps what it did.
                write_json(args.json, {"results": results, "reference": reference,
                                       "versions": versions(extras=("optuna", "sklearn")),
                                       "settings": {"seeds": seeds, "evaluations": evaluations,
                                                    "folds": FOLDS, "cpu": args.cpu,
                                                    "label": args.label,
                                                    "bo_options": args.bo_options}})
    checkpoints = [c for c in CHECKPOINTS if c <= evaluations] or [evaluations]
    print_table(results, methods, names, checkpoints)


def print_saved(paths) -> None:
    """The table of the runs saved by earlier ``--json`` runs; a file's ``--label``
    suffixes its ``bo`` (run with ``--label main`` it becomes ``bo_main``)."""
    results = []
    for path in paths:
        with open(path) as handle:
            saved = json.load(handle)
        label = saved["settings"].get("label")
        results += [{**r, "method": f"bo_{label}" if label and r["method"] == "bo" else r["method"]}
                    for r in saved["results"]]
    methods = list(dict.fromkeys(r["method"] for r in results))
    names = list(dict.fromkeys(r["task"] for r in results))
    evaluations = min(len(r["normalised"]) for r in results)
    print_table(results, methods, names, [c for c in CHECKPOINTS if c <= evaluations])


if __name__ == "__main__":
    main()
