"""Anytime performance of HPO methods, aggregated over seeds (pure numpy).

The unit of evaluation is a run's *anytime curve*: the value of its incumbent (the best
value found so far) as a function of the wall-clock time spent, of the number of trials
evaluated, or of a resource used (the cumulative sum of a per-trial metric such as
training steps). Curves of different runs are compared on a common grid by step
interpolation: the incumbent's value holds until the next improvement, and after the
run's last trial it holds for good (a finished run's answer stays its answer).

Aggregation works in *loss space*: values are signed so that lower is better, and a run
without any result yet counts as ``+inf`` (it has no answer, which is worse than any
answer). Medians and interquartile means over seeds are then well defined even early on,
when some seeds have nothing; a statistic that is ``+inf`` is reported as NaN (undefined),
so plots simply leave a gap.

Trials that a scheduler stopped early count towards the incumbent when they reported a
finite value: the model exists and was validated, and dropping it would charge
schedulers for the budget they saved. Trials that break a constraint never count.

- :mod:`jhpo.analysis.curves`: a run's anytime curve, the common grid, values on it.
- :mod:`jhpo.analysis.quantities`: loss space, regret and normalised regret.
- :mod:`jhpo.analysis.statistics`: median, interquartile mean, bootstrap bands, ranks.
- :mod:`jhpo.analysis.experiments`: an experiment directory read back.
- :mod:`jhpo.analysis.summary`: every method summarised on one grid, and compared.
"""

from jhpo.analysis.curves import (
    Curve,
    common_grid,
    counts_for_incumbent,
    first_reach,
    run_curve,
    values_on_grid,
)
from jhpo.analysis.experiments import (
    EXPERIMENT_FILE,
    ExperimentRecord,
    is_experiment,
    load_experiment,
)
from jhpo.analysis.quantities import QUANTITIES, from_loss, normalised_regret, regret, to_loss
from jhpo.analysis.statistics import (
    STATISTICS,
    average_rank,
    bootstrap_band,
    interquartile_mean,
    median,
    pareto_mask,
    statistic_function,
)
from jhpo.analysis.summary import (
    MethodComparison,
    MethodSummary,
    Summary,
    compare,
    quantity_curves,
    shared_seeds,
    summarise,
    summarise_curves,
)

__all__ = [
    "EXPERIMENT_FILE",
    "QUANTITIES",
    "STATISTICS",
    "Curve",
    "ExperimentRecord",
    "MethodComparison",
    "MethodSummary",
    "Summary",
    "average_rank",
    "bootstrap_band",
    "common_grid",
    "compare",
    "counts_for_incumbent",
    "first_reach",
    "from_loss",
    "interquartile_mean",
    "is_experiment",
    "load_experiment",
    "median",
    "normalised_regret",
    "pareto_mask",
    "quantity_curves",
    "regret",
    "run_curve",
    "shared_seeds",
    "statistic_function",
    "summarise",
    "summarise_curves",
    "to_loss",
    "values_on_grid",
]
