"""Figures of runs and experiments: anytime curves, trials over time, Pareto fronts.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so no
global backend is set or changed and nothing opens a window; :func:`save_figure` writes
it as PNG and PDF. matplotlib is imported here only, so ``import jhpo`` does not need it.
The numbers drawn come from :mod:`jhpo.analysis`, unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jhpo.analysis.curves import run_curve
from jhpo.analysis.statistics import pareto_mask
from jhpo.analysis.summary import Summary
from jhpo.goal import check_mode
from jhpo.runs.records import COMPLETED, FAILED, STOPPED, Result, Trial

try:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator
except ImportError as error:  # matplotlib is an optional extra
    raise ImportError("jhpo.plot needs matplotlib: pip install 'jhpo[examples]'") from error

STATUS_COLOURS = {COMPLETED: "#1f77b4", STOPPED: "#ff7f0e", FAILED: "#d62728"}
KINDS = ("anytime", "trials", "pareto", "curves")
_X_LABELS = {"time": "wall-clock time (s)", "evals": "evaluations",
             "resource": "resource used (sum over trials)", "member_steps": "member-steps trained"}
_QUANTITY_LABELS = {"value": "best {metric} so far", "regret": "regret of the incumbent",
                    "normalised_regret": "normalised regret of the incumbent"}
_STATISTIC_LABELS = {"median": "median", "iqm": "interquartile mean"}
_SINGLE_COLUMN = (6.0, 4.0)


def x_label(x: str) -> str:
    return _X_LABELS.get(x, f"cumulative {x}")


def anytime_figure(summary: Summary, *, title: str | None = None,
                   log_x: bool = False, log_y: bool | None = None,
                   show_rank: bool | None = None) -> Figure:
    """Each method's centre line (a step curve: the incumbent holds until it improves)
    with its bootstrap band, and below it the average rank of the methods over time.

    ``log_y`` defaults to on when every drawn value is positive and they span more than
    a factor of 20 (regret, errors falling from 0.9 to 0.02): the differences that matter
    late in a run are small in absolute terms. ``show_rank`` defaults to on when there
    are at least two methods.
    """
    show_rank = len(summary.methods) > 1 if show_rank is None else show_rank
    figure = Figure(figsize=(_SINGLE_COLUMN[0], 5.2 if show_rank else _SINGLE_COLUMN[1]),
                    layout="constrained")
    if show_rank:
        value_axes, rank_axes = figure.subplots(2, 1, sharex=True,
                                                gridspec_kw={"height_ratios": [3, 1.2]})
    else:
        value_axes, rank_axes = figure.subplots(), None
    colours = _method_colours(summary.methods)
    for name, method in summary.methods.items():
        label = f"{name} ({method.num_runs} run{'s' if method.num_runs != 1 else ''})"
        value_axes.plot(summary.grid, method.center, drawstyle="steps-post", color=colours[name],
                        linewidth=1.8, label=label)
        if method.num_runs > 1:
            value_axes.fill_between(summary.grid, method.lower, method.upper, step="post",
                                    color=colours[name], alpha=0.15, linewidth=0)
    if log_y is None:
        log_y = _spans_decades(summary)
    if log_y:
        value_axes.set_yscale("log")
        _plain_numbers_on_log_axis(value_axes.yaxis)
    value_axes.set_ylabel(_y_label(summary))
    _legend_above(figure, *value_axes.get_legend_handles_labels())
    value_axes.grid(alpha=0.3, linewidth=0.5)
    if title:
        value_axes.set_title(title, fontsize="medium")
    bottom_axes = value_axes
    if rank_axes is not None:
        for name, method in summary.methods.items():
            rank_axes.plot(summary.grid, method.rank, drawstyle="steps-post",
                           color=colours[name], linewidth=1.4)
        rank_axes.set_ylabel("average rank")
        rank_axes.set_ylim(0.8, len(summary.methods) + 0.2)
        rank_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        rank_axes.invert_yaxis()  # rank 1 (best) on top, as better values are above
        rank_axes.grid(alpha=0.3, linewidth=0.5)
        bottom_axes = rank_axes
    if log_x:
        bottom_axes.set_xscale("log")
        _plain_numbers_on_log_axis(bottom_axes.xaxis)
    elif summary.x == "evals":
        bottom_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom_axes.set_xlabel(x_label(summary.x))
    return figure


def _plain_numbers_on_log_axis(axis) -> None:
    """Label a log axis 0.1, 1, 10 rather than in powers of ten, which read slower; when
    it spans under two decades (few major ticks) label the 2x and 5x ticks too."""

    def minor_label(value, _):
        low, high = axis.get_view_interval()
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        return f"{value:g}" if high / low < 100 and round(mantissa) in (2, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor_label))


def _y_label(summary: Summary) -> str:
    quantity = _QUANTITY_LABELS[summary.quantity].format(metric=summary.metric or "value")
    if all(m.num_runs == 1 for m in summary.methods.values()):
        return quantity  # single runs: nothing was aggregated
    return (f"{quantity}\n({_STATISTIC_LABELS[summary.statistic]} over seeds, "
            f"{summary.confidence:.0%} bootstrap CI)")


def _spans_decades(summary: Summary, ratio: float = 20.0) -> bool:
    drawn = np.concatenate([np.concatenate([m.center, m.lower, m.upper])
                            for m in summary.methods.values()])
    drawn = drawn[np.isfinite(drawn)]
    return drawn.size > 0 and bool(np.all(drawn > 0)) and drawn.max() >= ratio * drawn.min()


def _method_colours(methods) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % len(palette)] for i, name in enumerate(methods)}


def trial_parent(trial: Trial) -> int | None:
    """The id of the trial this one was copied from (PBT exploit), if recorded."""
    # Trial records have no lineage field yet; read it as a field or a metric, whichever a
    # PBT run writes.
    parent = getattr(trial, "parent_id", None)
    if parent is None:
        parent = trial.metrics.get("parent_id")
    return None if parent is None else int(parent)


def trials_figure(result: Result, *, title: str | None = None) -> Figure:
    """One horizontal bar per trial from its start to its end (seconds since the run's
    first start), coloured by outcome. When trials record a parent (PBT), a grey line
    joins the end of the parent's bar to the start of the child's."""
    trials = sorted(result.trials, key=lambda t: t.trial_id)
    if not trials:
        raise ValueError("the run has no finished trial to draw")
    origin = min(t.start_time for t in trials)
    height = min(max(_SINGLE_COLUMN[1], 0.12 * len(trials) + 1.2), 12.0)
    figure = Figure(figsize=(_SINGLE_COLUMN[0], height), layout="constrained")
    axes = figure.subplots()
    rows = {t.trial_id: i for i, t in enumerate(trials)}
    colours = [STATUS_COLOURS.get(t.status, "grey") for t in trials]
    positions = [rows[t.trial_id] for t in trials]
    axes.barh(positions, [t.duration for t in trials],
              left=[t.start_time - origin for t in trials], height=0.8, color=colours)
    # A tick at each end keeps trials visible that are too short to show as a bar.
    axes.scatter([t.end_time - origin for t in trials], positions, marker="|", s=30,
                 c=colours, linewidths=1.2)
    improved = _improving_trials(result)
    if improved:
        axes.scatter([t.end_time - origin for t in improved],
                     [rows[t.trial_id] for t in improved], marker="*", s=60, color="black",
                     zorder=4, label="new best")
    by_id = {t.trial_id: t for t in trials}
    for child in trials:
        parent = by_id.get(trial_parent(child))
        if parent is not None:
            axes.plot([parent.end_time - origin, child.start_time - origin],
                      [rows[parent.trial_id], rows[child.trial_id]], color="0.4", linewidth=0.8)
    present = [s for s in STATUS_COLOURS if any(t.status == s for t in trials)]
    handles = [Patch(color=STATUS_COLOURS[s], label=s) for s in present]
    extra_handles, extra_labels = axes.get_legend_handles_labels()
    _legend_above(figure, handles + extra_handles, present + extra_labels)
    axes.set_xlabel("wall-clock time since the first trial started (s)")
    axes.set_ylabel("trial")
    axes.set_ylim(len(trials) - 0.4, -0.6)  # trial 0 at the top, like a table
    axes.grid(axis="x", alpha=0.3, linewidth=0.5)
    if title:
        axes.set_title(title, fontsize="medium")
    return figure


def learning_curves(reports: Sequence[dict], metric: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per trial id, the (resource, ``metric``) pairs it reported, by increasing resource.
    A resumed run may have reported a resource twice; the later report wins."""
    points: dict[int, dict[float, float]] = {}
    for report in reports:
        value = report["metrics"].get(metric)
        if value is not None:
            points.setdefault(report["trial_id"], {})[float(report["resource"])] = float(value)
    return {trial: (np.array(sorted(pairs)), np.array([pairs[r] for r in sorted(pairs)]))
            for trial, pairs in points.items()}


def curves_figure(result: Result, reports: Sequence[dict], metric: str, *,
                  title: str | None = None) -> Figure:
    """Every trial's reported ``metric`` against the resource (epochs, steps), coloured by
    how the trial ended: where a scheduler stopped trials, and whether early values
    foretold late ones, shows at a glance. The best trial's curve is drawn in black."""
    curves = learning_curves(reports, metric)
    if not curves:
        raise ValueError(f"no report of {metric!r} to draw (reports.jsonl is empty or lacks it)")
    status = {t.trial_id: t.status for t in result.trials}
    best = None if result.is_multiobjective or result.best is None else result.best.trial_id
    figure = Figure(figsize=_SINGLE_COLUMN, layout="constrained")
    axes = figure.subplots()
    for trial_id, (resource, values) in sorted(curves.items()):
        if trial_id == best:
            continue
        colour = STATUS_COLOURS.get(status.get(trial_id), "0.6")  # grey: still running
        axes.plot(resource, values, color=colour, linewidth=0.8, alpha=0.6, marker=".",
                  markersize=2)
    if best in curves:
        axes.plot(*curves[best], color="black", linewidth=1.6, marker=".", label="best trial",
                  zorder=4)
    present = [s for s in STATUS_COLOURS if any(status.get(t) == s for t in curves if t != best)]
    handles = [Patch(color=STATUS_COLOURS[s], label=s) for s in present]
    extra_handles, extra_labels = axes.get_legend_handles_labels()
    _legend_above(figure, handles + extra_handles, present + extra_labels)
    axes.set_xlabel("resource (as reported)")
    axes.set_ylabel(metric)
    values = np.concatenate([v for _, v in curves.values()])
    if np.all(values > 0) and values.max() / values.min() > 20:
        axes.set_yscale("log")
    axes.grid(alpha=0.3, linewidth=0.5)
    if title:
        axes.set_title(title, fontsize="medium")
    return figure


def _improving_trials(result: Result) -> list[Trial]:
    """The trials that, when they finished, beat every value seen before them (none for
    several objectives, where no single value orders the trials)."""
    if result.is_multiobjective:
        return []
    # The same order as run_curve's points, so flags line up with trials.
    ordered = sorted(result.trials, key=lambda t: (t.end_time, t.trial_id))
    curve = run_curve(result)
    previous = np.concatenate([[np.nan], curve.y[:-1]])
    changed = ~np.isnan(curve.y) & ((curve.y != previous) | np.isnan(previous))
    return [t for t, flag in zip(ordered, changed) if flag]


def objective_modes(result: Result, metrics: Sequence[str]) -> list[str]:
    """The mode of each of ``metrics``: from the run's metric/mode lists when it was a
    multi-objective run that optimised them, else "min"."""
    recorded = result.meta.get("metric")
    modes = result.meta.get("mode", "min")
    if isinstance(recorded, list):
        modes = modes if isinstance(modes, list) else [modes] * len(recorded)
        by_name = dict(zip(recorded, modes))
        return [by_name.get(m, "min") for m in metrics]
    if recorded in metrics and isinstance(modes, str):
        return [modes if m == recorded else "min" for m in metrics]
    return ["min"] * len(metrics)


def pareto_points(result: Result, metrics: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The two metrics of every usable trial that reported both as finite numbers, shape
    (n, 2), and whether each such trial is feasible (breaks no constraint)."""
    rows, feasible = [], []
    for trial in result.trials:
        values = [trial.metrics.get(m) for m in metrics]
        if trial.ok and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            rows.append(values)
            feasible.append(trial.feasible is not False)
    return np.asarray(rows, float).reshape(-1, len(metrics)), np.asarray(feasible, bool)


def pareto_figure(result: Result, metrics: Sequence[str], *, modes: Sequence[str] | None = None,
                  title: str | None = None) -> Figure:
    """Every trial's two metrics as points, the non-dominated feasible ones highlighted
    and joined by the staircase of the Pareto front; infeasible trials as crosses."""
    metrics = list(metrics)
    if len(metrics) != 2:
        raise ValueError(f"metrics={metrics!r} must name exactly two metrics")
    modes = list(modes) if modes is not None else objective_modes(result, metrics)
    for mode in modes:
        check_mode(mode)
    points, feasible = pareto_points(result, metrics)
    if points.shape[0] == 0:
        available = sorted({k for t in result.trials for k in t.metrics})
        raise ValueError(f"no trial reported both metrics {metrics}; trials report {available}")
    front = points[feasible][pareto_mask(points[feasible], modes)]
    front = front[np.argsort(front[:, 0], kind="stable")]
    figure = Figure(figsize=_SINGLE_COLUMN, layout="constrained")
    axes = figure.subplots()
    axes.scatter(points[feasible, 0], points[feasible, 1], s=14, color="0.65", label="trials",
                 zorder=2)
    if not feasible.all():
        axes.scatter(points[~feasible, 0], points[~feasible, 1], s=16, marker="x",
                     color="#d62728", alpha=0.6, label="infeasible trials", zorder=2)
    # The staircase bounds the region the front dominates. With the first metric minimised
    # a point covers everything to its right, so its second metric holds until the next
    # point (steps-post); maximised, it covers everything to its left (steps-pre).
    axes.plot(front[:, 0], front[:, 1], drawstyle="steps-post" if modes[0] == "min" else
              "steps-pre", color="C3", linewidth=1.5, marker="o", markersize=5,
              label=f"Pareto front ({len(front)} trials)", zorder=3)
    axes.set_xlabel(f"{metrics[0]} ({_direction(modes[0])})")
    axes.set_ylabel(f"{metrics[1]} ({_direction(modes[1])})")
    _legend_above(figure, *axes.get_legend_handles_labels())
    axes.grid(alpha=0.3, linewidth=0.5)
    if title:
        axes.set_title(title, fontsize="medium")
    return figure


def _direction(mode: str) -> str:
    return "lower is better" if mode == "min" else "higher is better"


def _legend_above(figure: Figure, handles, labels) -> None:
    """A legend in a row above the axes, where it can never hide data."""
    figure.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 3),
                  frameon=False, fontsize="small")


def save_figure(figure: Figure, path: str | os.PathLike, *, dpi: int = 200) -> list[Path]:
    """Write ``figure`` as PNG and PDF next to each other: ``path`` with its suffix
    replaced (``fig.png`` gives ``fig.png`` and ``fig.pdf``). Returns both paths."""
    path = Path(path)
    if path.suffix.lower() not in ("", ".png", ".pdf"):
        raise ValueError(f"path={str(path)!r} must end in .png, .pdf or have no suffix")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".pdf"):
        target = path.with_suffix(suffix)
        figure.savefig(target, dpi=dpi)
        written.append(target)
    return written
