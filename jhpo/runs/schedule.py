"""How a population run is scheduled: the scheduler (a name or a ``Scheduler`` whose
levels are steps) and its options, checked once.

``tune_population`` takes the schedulers and option names of ``jhpo.tune`` (resources
counted in training steps), and a few of its own: ``interval`` (steps between decisions),
``checkpoint_every``, ASHA's ``form`` and PBT's ``quantile`` and ``resample_probability``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from jhpo import population as pop
from jhpo import schedulers as schedulers_module
from jhpo.options import check_choice, check_options
from jhpo.schedulers import Scheduler

SCHEDULERS = ("asha", "hyperband", "median", "pbt")
FORMS = ("stopping", "promotion")


class Schedule(NamedTuple):
    """How a population run is scheduled: by a rung-based ``scheduler`` (levels in
    steps), by PBT, or by nothing (``name`` None: nothing is ever stopped), evaluated every
    ``interval`` steps, checkpointed every ``checkpoint_every`` intervals."""

    name: str | None
    scheduler: Scheduler | None  # None for PBT and for no scheduler
    interval: int
    checkpoint_every: int
    form: str
    eta: float  # ASHA's promotion form promotes the top 1/eta of a rung
    quantile: float
    resample_probability: float


# Options of every scheduler in a population run, beside the scheduler's own (the same
# names as in jhpo.tune: min_resource, max_resource, eta, min_trials; resources in steps).
RUN_OPTIONS = ("interval", "checkpoint_every")
PBT_OPTIONS = ("quantile", "resample_probability")


def unscheduled(steps: int) -> Schedule:
    """A run without a scheduler: every member trains ``steps`` steps in one interval."""
    return Schedule(None, None, steps, 1, "stopping", 3, 0.25, 0.25)


def schedule_for(scheduler: str | Scheduler, options: Mapping[str, Any], steps: int) -> Schedule:
    """Check a population run's ``scheduler`` (a name or a :class:`Scheduler` whose
    levels are steps) and ``scheduler_options``."""
    options = dict(options)
    if isinstance(scheduler, Scheduler):
        check_options(f"scheduler {scheduler.name!r} of tune_population", options, RUN_OPTIONS)
        levels = scheduler.levels
        if any(level != int(level) for level in levels) or levels[-1] != steps:
            raise ValueError(f"scheduler {scheduler.name!r} has levels {list(levels)}: in a "
                             f"population run they are steps, whole numbers ending at steps={steps}")
        default_interval = math.gcd(*(int(level) for level in levels))
        name = scheduler.name
    else:
        check_choice("scheduler", scheduler, SCHEDULERS)
        own = PBT_OPTIONS if scheduler == "pbt" else tuple(schedulers_module.option_names(scheduler))
        form = ("form",) if scheduler == "asha" else ()
        check_options(f"scheduler {scheduler!r} of tune_population", options,
                      own + RUN_OPTIONS + form)
        # by default 27 intervals (three rungs of eta = 3 above the first) or 8 PBT rounds
        default_interval = pop.steps_per_block(steps, 8 if scheduler == "pbt" else 27)
        name = scheduler
    interval = options.pop("interval", default_interval)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1 or steps % interval:
        raise ValueError(f"scheduler_options interval={interval!r} must be a positive divisor of "
                         f"steps={steps}")
    every = options.pop("checkpoint_every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"scheduler_options checkpoint_every={every!r} must be a positive integer "
                         "(intervals between checkpoints)")
    form = options.pop("form", "stopping")
    check_choice("scheduler_options form", form, FORMS)
    quantile = options.pop("quantile", 0.25)
    if not 0 < quantile <= 0.5:
        raise ValueError(f"scheduler_options quantile={quantile!r} must lie in (0, 0.5]")
    resample = options.pop("resample_probability", 0.25)
    if name != "pbt" and not isinstance(scheduler, Scheduler):
        scheduler = rung_scheduler(name, options, interval, steps)
    if isinstance(scheduler, Scheduler):
        off_interval = [level for level in scheduler.levels if level % interval]
        if off_interval:
            raise ValueError(f"scheduler {name!r} decides at steps {list(scheduler.levels)}; "
                             f"with interval={interval} it sees steps {off_interval} never: give "
                             "an interval that divides every level")
    return Schedule(name, scheduler if name != "pbt" else None, interval, every, form,
                    options.get("eta", 3), quantile, resample)


def rung_scheduler(name: str, options: Mapping[str, Any], interval: int, steps: int) -> Scheduler:
    """The rung-based scheduler ``name`` over steps: its first rung (``min_resource``) is
    one interval unless given, its last (``max_resource``) the full training."""
    max_resource = options.get("max_resource", steps)
    if max_resource != steps:
        raise ValueError(f"scheduler_options max_resource={max_resource!r}: in tune_population "
                         f"the last rung is the full training, steps={steps}")
    return schedulers_module.make(name, **{**options, "min_resource": options.get("min_resource", interval),
                                           "max_resource": steps})
