"""An experiment directory (or a single run directory) read back for analysis."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from jhpo import jsonfile
from jhpo.analysis.curves import counts_for_incumbent
from jhpo.runs.directory import META_FILE, load_run
from jhpo.runs.records import Result

EXPERIMENT_FILE = "experiment.json"


@dataclasses.dataclass
class ExperimentRecord:
    """The runs of an experiment directory, by method and seed, with what was optimised."""

    path: Path
    runs: dict[str, dict[int, Result]]
    metric: str | None
    mode: str
    optimum: float | None = None
    description: dict = dataclasses.field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(self.runs)

    def worst_value(self) -> float:
        """The worst value any trial of the experiment reported (NaN if none did)."""
        values = [t.value for seeds in self.runs.values() for r in seeds.values()
                  for t in r.trials if counts_for_incumbent(t)]
        if not values:
            return math.nan
        return max(values) if self.mode == "min" else min(values)


def is_experiment(path: str | os.PathLike) -> bool:
    return (Path(path) / EXPERIMENT_FILE).exists()


def load_experiment(path: str | os.PathLike) -> ExperimentRecord:
    """Read an experiment directory (``experiment.json`` and one run directory per method
    and seed). A single run directory loads as an experiment of one method, one seed.

    Runs listed in ``experiment.json`` that have no run directory yet are left out.
    """
    path = Path(path)
    if is_experiment(path):
        description = jsonfile.loads((path / EXPERIMENT_FILE).read_text())
        runs: dict[str, dict[int, Result]] = {}
        for method in description["methods"]:
            seeds = {}
            for seed in description["seeds"]:
                run_dir = path / method["name"] / f"seed_{seed}"
                if (run_dir / META_FILE).exists():
                    seeds[int(seed)] = load_run(run_dir)
            if seeds:
                runs[method["name"]] = seeds
        settings = description.get("settings", {})
        # A population task names its metric itself, so only its runs record it.
        metric = settings.get("metric") or next(
            (r.metric for seeds in runs.values() for r in seeds.values()), None)
        return ExperimentRecord(path, runs, metric, settings.get("mode", "min"),
                                description.get("optimum"), description)
    if (path / META_FILE).exists():
        result = load_run(path)
        name = "+".join(str(result.meta[k]) for k in ("searcher", "scheduler")
                        if result.meta.get(k)) or "run"
        seed = int(result.meta.get("seed", 0))
        return ExperimentRecord(path, {name: {seed: result}}, result.metric, result.mode,
                                result.meta.get("optimum"),
                                {"methods": [{"name": name}], "seeds": [seed]})
    raise FileNotFoundError(
        f"{str(path)!r} is neither a jhpo experiment ({EXPERIMENT_FILE}) nor a run ({META_FILE})"
    )
