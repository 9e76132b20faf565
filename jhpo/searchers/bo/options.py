"""The options of the ``bo`` searcher: their validation, and the static records that
reach the compiled kernels (hashable, so they key the kernels' jit caches)."""

from __future__ import annotations

from typing import NamedTuple

from jhpo import acquisition as acq
from jhpo.searchers.base import check_count, check_number
from jhpo.searchers.bo.trust import TrustRegionConfig
from jhpo.space import Space

ACQUISITIONS = ("logei", "ucb")
LIARS = ("auto", "believer", "best", "mean", "worst")
INCUMBENTS = ("mean", "observed")


class FitConfig(NamedTuple):
    """Static options of the fit kernel."""

    warp: bool
    num_restarts: int
    fit_evaluations: int
    refine_evaluations: int
    fit_subset: int
    model_rows: int = 256


class ProposeConfig(NamedTuple):
    """Static options of the proposal kernel."""

    warp: bool
    acquisition: str
    ucb_beta: float
    maximize: acq.MaximizeConfig
    cost_exponent: float = 1.0
    liar: str = "believer"  # resolved: never "auto" (see ``config_for_ask``)
    model_rows: int = 256
    incumbent: str = "observed"
    trust_region: TrustRegionConfig | None = None  # None: the whole cube


class Outputs(NamedTuple):
    """What is told per trial (see ``jhpo.goal``): objectives, constraints, cost, fidelity."""

    num_objectives: int = 1
    num_constraints: int = 0
    cost_aware: bool = False
    multi_fidelity: bool = False

    @property
    def told(self) -> int:
        """Numbers told per trial."""
        return (self.num_objectives + self.num_constraints + int(self.cost_aware)
                + int(self.multi_fidelity))

    @property
    def modelled(self) -> int:
        """GPs fitted: the (scalarised) objective, each constraint and the log cost."""
        return 1 + self.num_constraints + int(self.cost_aware)


class BOConfig(NamedTuple):
    """Every option of the searcher. Only ``fit``, ``propose`` and ``outputs`` reach
    the compiled kernels, so the other options never cause a recompilation."""

    num_initial: int
    refit_growth: float
    fit: FitConfig
    propose: ProposeConfig
    outputs: Outputs = Outputs()
    liar: str = "auto"  # as asked: "auto" is resolved per ask by ``config_for_ask``
    explore_after: int = 0
    region_in_batches: bool = False  # whether asks of several rows keep the trust region


def make_config(
    space: Space,
    *,
    num_initial: int | None = None,
    warp: bool = False,
    acquisition: str = "logei",
    ucb_beta: float = 4.0,
    num_restarts: int = 8,
    fit_evaluations: int = 30,
    refine_evaluations: int = 5,
    refit_growth: float = 1.25,
    fit_subset: int = 64,
    model_rows: int = 256,
    num_screen: int = 2048,
    num_starts: int = 8,
    ascent_steps: int = 40,
    ascent_learning_rate: float = 0.03,
    num_local: int = 256,
    num_objectives: int = 1,
    num_constraints: int = 0,
    cost_aware: bool = False,
    cost_exponent: float = 1.0,
    multi_fidelity: bool = False,
    liar: str = "auto",
    incumbent: str = "observed",
    explore_after: int = 0,
    trust_region: bool | str = "auto",
) -> BOConfig:
    """Check the options of ``bo`` and gather them; see ``bo`` for their meaning."""
    if num_initial is None:
        num_initial = min(10, max(4, 2 * len(space.names)))
    check_count("num_initial", num_initial, 1)
    check_flag("warp", warp)
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"acquisition={acquisition!r} must be one of {ACQUISITIONS}")
    if liar not in LIARS:
        raise ValueError(f"liar={liar!r} must be one of {LIARS}")
    if incumbent not in INCUMBENTS:
        raise ValueError(f"incumbent={incumbent!r} must be one of {INCUMBENTS}")
    check_count("num_restarts", num_restarts, 1)
    check_count("fit_evaluations", fit_evaluations, 0)
    check_count("refine_evaluations", refine_evaluations, 0)
    check_count("fit_subset", fit_subset, 2)
    check_count("model_rows", model_rows, 2)
    check_count("num_screen", num_screen, 1)
    check_count("num_starts", num_starts, 1)
    check_count("ascent_steps", ascent_steps, 0)
    check_count("num_local", num_local, 0)
    check_number("refit_growth", refit_growth, 1.0, allow_equal=True)
    check_number("ucb_beta", ucb_beta, 0.0)
    check_number("ascent_learning_rate", ascent_learning_rate, 0.0)
    check_count("num_objectives", num_objectives, 1)
    check_count("num_constraints", num_constraints, 0)
    check_flag("cost_aware", cost_aware)
    check_number("cost_exponent", cost_exponent, 0.0)
    if cost_exponent != 1.0 and not cost_aware:
        raise ValueError(f"cost_exponent={cost_exponent!r} only applies with cost_aware=True")
    check_flag("multi_fidelity", multi_fidelity)
    check_count("explore_after", explore_after, 0)
    single_value = num_objectives == 1 and not num_constraints and not multi_fidelity
    region = trust_region_applies(trust_region, single_value)
    if acquisition == "ucb" and (num_constraints or cost_aware):
        raise ValueError(
            f"acquisition={acquisition!r} cannot be combined with constraints or cost_aware: "
            "their log-probability and log-cost terms are added to LogEI; use 'logei'"
        )
    return BOConfig(
        num_initial=int(num_initial),
        refit_growth=float(refit_growth),
        fit=FitConfig(
            warp=warp,
            num_restarts=int(num_restarts),
            fit_evaluations=int(fit_evaluations),
            refine_evaluations=int(refine_evaluations),
            fit_subset=int(fit_subset),
            model_rows=int(model_rows),
        ),
        propose=ProposeConfig(
            warp=warp,
            acquisition=acquisition,
            ucb_beta=float(ucb_beta),
            maximize=acq.MaximizeConfig(
                num_screen=int(num_screen),
                num_starts=int(num_starts),
                num_steps=int(ascent_steps),
                learning_rate=float(ascent_learning_rate),
                num_local=int(num_local),
            ),
            cost_exponent=float(cost_exponent),
            liar=liar_for_rows(liar, 1),
            model_rows=int(model_rows),
            incumbent=incumbent,
            trust_region=(TrustRegionConfig(start=int(num_initial),
                                            failure_tolerance=max(4, space.dim))
                          if region else None),
        ),
        outputs=Outputs(int(num_objectives), int(num_constraints), cost_aware, multi_fidelity),
        liar=liar,
        explore_after=int(explore_after),
        region_in_batches=trust_region is True,
    )


def config_for_ask(config: BOConfig, n: int) -> BOConfig:
    """``config`` as its proposals use it for an ask of ``n`` rows: the liar resolved, and
    no trust region for a batch unless asked for explicitly (``trust_region=True``). On
    batches of 8 the region was ahead on two test functions and behind on two
    (docs/design/bo.md), so "auto" keeps it to one-row asks, where it was measured
    no worse anywhere."""
    propose = config.propose._replace(liar=liar_for_rows(config.liar, n))
    if n > 1 and not config.region_in_batches:
        propose = propose._replace(trust_region=None)
    return config._replace(propose=propose)


def liar_for_rows(liar: str, n: int) -> str:
    """The liar for an ask of ``n`` rows. "auto" is the kriging believer for one row, since
    the rows then pending are other workers' trials, spread already; for a batch it is the
    best observed value, since a batch needs the spread a constant gives
    (docs/design/bo.md has the measurements)."""
    if liar != "auto":
        return liar
    return "believer" if n == 1 else "best"


def trust_region_applies(trust_region, single_value: bool) -> bool:
    """Whether the trust region is on (for one-row asks; see ``config_for_ask``): "auto"
    turns it on where it applies (one objective, no constraints, no fidelity;
    ``single_value``), True insists on it and raises where it does not apply, since its box
    grows and shrinks on improvements of a single value."""
    if isinstance(trust_region, str) and trust_region == "auto":
        return single_value
    if not isinstance(trust_region, bool):
        raise ValueError(f"trust_region={trust_region!r} must be True, False or 'auto'")
    if trust_region and not single_value:
        raise ValueError(
            "trust_region=True needs one objective, no constraints and no multi_fidelity: "
            "its box grows and shrinks on improvements of a single value"
        )
    return trust_region


def check_flag(name: str, value) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be True or False")
