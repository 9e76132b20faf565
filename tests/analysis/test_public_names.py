"""``jhpo.analysis`` keeps offering every name it held before it became a package."""

import importlib

import jhpo.analysis

HOMES = {
    "curves": ["Curve", "common_grid", "counts_for_incumbent", "first_reach", "run_curve",
               "values_on_grid"],
    "quantities": ["QUANTITIES", "from_loss", "normalised_regret", "regret", "to_loss"],
    "statistics": ["STATISTICS", "average_rank", "bootstrap_band", "interquartile_mean",
                   "median", "pareto_mask", "statistic_function"],
    "experiments": ["EXPERIMENT_FILE", "ExperimentRecord", "is_experiment", "load_experiment"],
    "summary": ["MethodComparison", "MethodSummary", "Summary", "compare", "quantity_curves",
                "shared_seeds", "summarise", "summarise_curves"],
}


def test_each_name_of_the_package_is_its_home_modules_object():
    for module_name, names in HOMES.items():
        home = importlib.import_module(f"jhpo.analysis.{module_name}")
        for name in names:
            assert getattr(jhpo.analysis, name) is getattr(home, name), name


def test_the_package_lists_exactly_those_names():
    assert sorted(jhpo.analysis.__all__) == sorted(n for names in HOMES.values() for n in names)
