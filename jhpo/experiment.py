"""Experiments: a grid of HPO methods times seeds, one run directory per cell.

An experiment directory looks like this::

    EXP/experiment.json              what was run: target, space, methods, seeds, settings
    EXP/<method>/seed_<k>/meta.json  an ordinary jhpo run directory per method and seed
    EXP/<method>/seed_<k>/trials.jsonl

A *method* is a named searcher and optional scheduler with their settings; every method
runs once per seed through the same tuning function: ``jhpo.tune`` for a black-box
objective, ``tune_population`` for a population task. Calling :func:`run_experiment`
again on the same directory resumes it: finished runs are skipped, a run that was
interrupted resumes from its own records (the tuning function's run_dir resume), and new
methods or seeds may be added to the grid. A wall-clock budget (``max_wallclock_s``)
counts from each call, so an interrupted run gets that budget again when resumed.

Seeds run one after another, never as one vmapped program, even for pure JAX test
functions. The anytime curves that compare methods are measured in wall-clock time, and
seeds batched into one program would share one clock: each trial would be charged the
time of the whole batch, and the searchers' own work would be hidden. Runs are also
interleaved (every method for seed 0, then every method for seed 1, ...) so that a
change in machine load, common on a shared machine, falls on all methods alike.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jhpo import jsonfile
from jhpo import searchers as searchers_module
from jhpo.analysis.experiments import EXPERIMENT_FILE, ExperimentRecord, load_experiment
from jhpo.lock import RunLock
from jhpo.progress import progress_bar
from jhpo.runs.directory import load_run, versions
from jhpo.space import Space

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
# Arguments the experiment itself passes to the tuning function for every run.
_RESERVED = ("searcher", "searcher_options", "scheduler", "scheduler_options", "seed", "run_dir",
             "progress")
# Fields of experiment.json that must match when an experiment is resumed.
_IDENTITY_KEYS = ("target", "tuner", "space", "settings", "optimum")
# Settings that say where workers run, not what runs: passed to every run, left out of
# experiment.json (a function's repr changes between processes; a resume may place its
# workers on other devices).
_PLACEMENT_SETTINGS = ("worker_env", "resources_per_trial")


@dataclasses.dataclass(frozen=True)
class Method:
    """An HPO method of an experiment: a searcher, an optional scheduler, their settings.

    ``options`` are further keyword arguments of the tuning function for this method
    only (for instance a population size); they override the experiment's shared
    settings. ``name`` names the method's directory, so it is restricted to letters,
    digits and ``_ . + -``.
    """

    name: str
    searcher: str = "random"
    searcher_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    scheduler: str | None = None
    scheduler_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"Method name={self.name!r} must start with a letter or digit and contain only "
                "letters, digits and _ . + - (it names a directory)"
            )
        if self.searcher not in searchers_module.names():
            raise ValueError(
                f"Method {self.name!r}: searcher={self.searcher!r} is not one of "
                f"{searchers_module.names()}"
            )
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise TypeError(
                f"Method {self.name!r}: scheduler={self.scheduler!r} must be a name or None")
        clashes = sorted(set(self.options) & set(_RESERVED))
        if clashes:
            raise ValueError(
                f"Method {self.name!r}: options may not set {clashes}; use the Method fields "
                "(the experiment sets seed, run_dir and progress itself)"
            )

    def describe(self) -> dict:
        return jsonfile.normalise(dataclasses.asdict(self))

    def tuner_arguments(self) -> dict:
        """Keyword arguments for the tuning function; scheduler arguments only when a
        scheduler is set, so tuning functions without schedulers accept them."""
        arguments = {"searcher": self.searcher}
        if self.searcher_options:
            arguments["searcher_options"] = dict(self.searcher_options)
        if self.scheduler is not None:
            arguments["scheduler"] = self.scheduler
            if self.scheduler_options:
                arguments["scheduler_options"] = dict(self.scheduler_options)
        arguments.update(self.options)
        return arguments


def as_methods(methods: Iterable[Method | str]) -> list[Method]:
    """Methods from Method records or plain searcher names (``"bo"`` is
    ``Method("bo", searcher="bo")``); names must be distinct."""
    records = [m if isinstance(m, Method) else Method(m, searcher=m) for m in methods]
    if not records:
        raise ValueError("methods must name at least one method")
    names = [m.name for m in records]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"methods must have distinct names; repeated: {repeated}")
    return records


def as_seeds(seeds: int | Sequence[int]) -> list[int]:
    """``seeds`` as a list: a count ``n`` means seeds ``0 .. n-1``."""
    if isinstance(seeds, numbers.Integral):
        if seeds < 1:
            raise ValueError(f"seeds={seeds!r} must be a positive count or a list of seeds")
        return list(range(int(seeds)))
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, numbers.Integral) and s >= 0 for s in seeds):
        raise ValueError(f"seeds={seeds!r} must be a non-empty list of non-negative integers")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r} must not repeat a seed")
    return [int(s) for s in seeds]


def resolve_tuner(tuner: str | Callable) -> tuple[Callable, str]:
    """The tuning function and its recorded name: ``"tune"`` (black-box objectives),
    ``"tune_population"`` (population tasks), or any function with their interface."""
    if callable(tuner):
        return tuner, f"{tuner.__module__}.{tuner.__qualname__}"
    if tuner == "tune":
        from jhpo.runs.blackbox import tune

        return tune, "jhpo.tune"
    if tuner == "tune_population":
        from jhpo.runs.population import tune_population

        return tune_population, "jhpo.tune_population"
    raise ValueError(f"tuner={tuner!r} must be 'tune', 'tune_population' or a function")


def run_key(method: str, seed: int) -> str:
    return f"{method}/seed_{seed}"


def run_directory(directory: str | Path, method: str, seed: int) -> Path:
    """Where the run of ``method`` with ``seed`` lives inside an experiment directory."""
    return Path(directory) / method / f"seed_{seed}"


def unfinished_runs(directory: str | Path, methods: Iterable[Method | str],
                    seeds: int | Sequence[int]) -> list[tuple[Method, int]]:
    """The (method, seed) pairs of the grid that a call of :func:`run_experiment` on
    ``directory`` would run, in the order it would run them."""
    path = Path(directory) / EXPERIMENT_FILE
    finished = jsonfile.loads(path.read_text()).get("finished", {}) if path.exists() else {}
    return [(m, s) for m, s in _run_order(as_methods(methods), as_seeds(seeds))
            if run_key(m.name, s) not in finished]


def _run_order(methods: list[Method], seeds: list[int]) -> list[tuple[Method, int]]:
    """Every method for the first seed, then every method for the next, and so on."""
    return [(m, s) for s in seeds for m in methods]


def run_experiment(
    target: Any,
    space: Space | Mapping[str, Any],
    methods: Iterable[Method | str],
    seeds: int | Sequence[int],
    directory: str | Path,
    *,
    tuner: str | Callable = "tune",
    optimum: float | None = None,
    progress: bool = True,
    **settings: Any,
) -> ExperimentRecord:
    """Run every method with every seed on ``target``, each into its own run directory.

    ``target`` is what the tuning function optimises: an objective function for
    ``tuner="tune"``, a task for ``tuner="tune_population"``. ``settings`` are keyword
    arguments shared by all runs (``metric``, ``mode``, ``num_trials``, ``max_wallclock_s``,
    ``steps``, ...). ``optimum``, when known, is recorded so that the analysis can report
    regret; it defaults to the target's ``optimum`` attribute (test problems have one).
    Calling it again resumes (see the module docstring); settings that would make the
    runs incomparable (another space, budget, metric or target) are refused.

    Parallel trials: ``workers=k`` (and ``backend``, ``worker_env``, ``resources_per_trial``,
    ``synchronous``, ``trial_timeout_s``; see :func:`jhpo.tune`) is passed to every run,
    which then runs k trials at once; the runs themselves still run one after another.
    Running several method x seed runs at once instead would have them share the machine:
    the wall-clock of each, which the anytime curves compare, would depend on what its
    neighbours happened to do meanwhile, and a method would be charged for their work.
    Given to each run, the k workers are that method's own, and its curve is the method's
    with k workers. ``workers`` and the other settings that shape the curves must match on
    a resume; ``worker_env`` and ``resources_per_trial`` only place the workers and are
    not recorded. ``tuner="tune_population"`` has no ``workers``: its members already
    train together in one program.

    Returns the experiment as loaded by :func:`jhpo.analysis.load_experiment`.
    """
    methods = as_methods(methods)
    seeds = as_seeds(seeds)
    tune_function, tuner_name = resolve_tuner(tuner)
    clashes = sorted(set(settings) & set(_RESERVED))
    if clashes:
        raise ValueError(f"settings may not set {clashes}: the experiment sets them per run")
    if optimum is None:
        optimum = getattr(target, "optimum", None)
    if optimum is not None and not isinstance(optimum, numbers.Real):
        raise TypeError(f"optimum={optimum!r} must be a number or None")
    space = space if isinstance(space, Space) else Space(space)
    directory = Path(directory)
    with RunLock(directory):  # one writer of experiment.json; each run locks its own
        return _run_grid(target, space, methods, seeds, directory, tune_function, tuner_name,
                         settings, optimum, progress)


def _run_grid(target, space: Space, methods: list[Method], seeds: list[int], directory: Path,
              tune_function, tuner_name: str, settings: dict, optimum, progress: bool):
    description = _start(directory, {
        "target": _qualified_name(target),
        "tuner": tuner_name,
        "space": space.describe(),
        "settings": jsonfile.normalise({"mode": "min", **{key: value for key, value in settings.items()
                                                          if key not in _PLACEMENT_SETTINGS}}),
        "optimum": None if optimum is None else float(optimum),
    }, methods, seeds)

    grid = _run_order(methods, seeds)
    finished = description["finished"]
    with progress_bar(total=len(grid), enabled=progress, unit="run", desc="experiment",
                      initial=sum(run_key(m.name, s) in finished for m, s in grid)) as bar:
        for method, seed in grid:
            key = run_key(method.name, seed)
            if key in finished:
                continue
            bar.set_postfix_str(key)
            run_dir = run_directory(directory, method.name, seed)
            result = tune_function(target, space, **{**settings, **method.tuner_arguments()},
                                   seed=seed, run_dir=str(run_dir), progress=False)
            if getattr(result, "interrupted", False):  # Ctrl-C: the grid stops, runs resume later
                break
            finished[key] = _run_summary(run_dir)
            _write_description(directory, description)
            bar.update(1)
    return load_experiment(directory)


def _start(directory: Path, identity: dict, methods: list[Method], seeds: list[int]) -> dict:
    """Create experiment.json, or check a stored one and add the new methods and seeds."""
    path = directory / EXPERIMENT_FILE
    if not path.exists():
        description = {**identity, "methods": [m.describe() for m in methods], "seeds": seeds,
                       "finished": {}, "created": time.time(), "versions": versions()}
        _write_description(directory, description)
        return description
    description = jsonfile.loads(path.read_text())
    for key in _IDENTITY_KEYS:
        if not jsonfile.same_json(description.get(key), identity[key]):
            raise ValueError(
                f"experiment {str(directory)!r} was run with a different {key!r}: stored "
                f"{description.get(key)!r}, requested {identity[key]!r}; use a new directory "
                "or the same settings to resume"
            )
    stored_methods = {m["name"]: m for m in description["methods"]}
    for method in methods:
        stored = stored_methods.get(method.name)
        if stored is None:
            description["methods"].append(method.describe())
        elif stored != method.describe():
            raise ValueError(
                f"experiment {str(directory)!r} already has a method named {method.name!r} with "
                f"other settings: stored {stored}, requested {method.describe()}; give the new "
                "method another name"
            )
    description["seeds"] += [s for s in seeds if s not in description["seeds"]]
    _write_description(directory, description)
    return description


def _write_description(directory: Path, description: dict) -> None:
    """Write experiment.json atomically: a kill leaves the old file or the new one."""
    directory.mkdir(parents=True, exist_ok=True)
    jsonfile.atomic_write_text(directory / EXPERIMENT_FILE, jsonfile.dumps(description, indent=2))


def _run_summary(run_dir: Path) -> dict:
    """What experiment.json notes of a finished run, for a glance without loading it."""
    result = load_run(run_dir)
    summary = {"num_trials": len(result.trials), "finished_at": time.time()}
    if result.is_multiobjective:
        summary["pareto_front"] = len(result.pareto_front())
    else:
        best = result.best
        summary["best"] = None if best is None else best.value
    return summary


def _qualified_name(target: Any) -> str:
    """A readable name for the objective or task, recorded to catch a resume on the
    wrong target: functions by module and name, records by their ``name`` field (test
    problems, tasks), other objects by their type."""
    if isinstance(getattr(target, "name", None), str) and not hasattr(target, "__qualname__"):
        return f"{type(target).__qualname__}:{target.name}"
    named = target if hasattr(target, "__qualname__") else type(target)
    return f"{getattr(named, '__module__', '?')}.{named.__qualname__}"
