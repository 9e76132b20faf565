"""The ``jhpo`` command line: ``show``, ``plot`` and ``compare``."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path

from jhpo.analysis.experiments import EXPERIMENT_FILE, is_experiment, load_experiment
from jhpo.analysis.quantities import QUANTITIES
from jhpo.analysis.statistics import STATISTICS
from jhpo.analysis.summary import compare, summarise
from jhpo.runs.directory import RunDirectory, load_run
from jhpo.runs.records import COMPLETED, FAILED, STOPPED, Result, error_headline


def _format_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):  # the values of a multi-objective trial
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns left-aligned to their widest cell, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in [header, *rows])


def trials_table(result: Result, limit: int | None = None) -> str:
    """A plain-text table: one row per trial, one column per parameter, and the first
    line of each failed trial's error in a last column when some trial failed."""
    names: list[str] = []
    for trial in result.trials:
        names += [k for k in trial.config if k not in names]
    trials = sorted(result.trials, key=lambda t: t.trial_id)
    if limit is not None:
        trials = trials[:limit]
    with_errors = any(t.status == FAILED for t in trials)
    header = ["trial", "status", "value", "seconds", *names, *(["error"] if with_errors else [])]
    rows = [
        [str(t.trial_id), t.status, _format_value(t.value), f"{t.duration:.2f}",
         *[_format_value(t.config.get(n)) for n in names],
         *([error_headline(t.error) if t.status == FAILED else ""] if with_errors else [])]
        for t in trials
    ]
    return format_table(header, rows)


def _error_lines(result: Result, limit: int | None) -> list[str]:
    """Each failed trial's full error text, indented under its trial id."""
    trials = sorted(result.trials, key=lambda t: t.trial_id)[:limit]
    lines = []
    for trial in trials:
        if trial.status == FAILED:
            lines.append(f"trial {trial.trial_id}:")
            lines += ["    " + line for line in (trial.error or "-").rstrip().splitlines()]
    return lines


def _timestamp(unix_time) -> str:
    if not isinstance(unix_time, (int, float)):
        return "unknown"
    return datetime.datetime.fromtimestamp(unix_time, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def _reproducibility_lines(meta: dict) -> list[str]:
    """What a reader needs to rerun a run: software, hardware, space, settings, seed."""
    lines = [f"  searcher {meta.get('searcher')}  options "
             f"{json.dumps(meta.get('searcher_options', {}), sort_keys=True)}"]
    if meta.get("scheduler") is not None:
        lines.append(f"  scheduler {meta.get('scheduler')}  options "
                     f"{json.dumps(meta.get('scheduler_options', {}), sort_keys=True)}")
    lines.append(f"  metric {meta.get('metric')}  mode {meta.get('mode')}  seed {meta.get('seed')}")
    if meta.get("constraints"):
        lines.append(f"  constraints {meta['constraints']} (each must be > 0)")
    lines.append(f"  created {_timestamp(meta.get('created'))}")
    versions = meta.get("versions", {})
    if versions:
        lines.append("  versions " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append("  space " + json.dumps(meta.get("space", {})))
    return lines


def _status_counts(result: Result) -> str:
    """How many trials completed, were stopped early (only said when some were), failed."""
    counts = {s: sum(t.status == s for t in result.trials) for s in (COMPLETED, STOPPED, FAILED)}
    if not counts[STOPPED]:
        del counts[STOPPED]
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def show(run_dir: str, limit: int | None = None, errors: bool = False) -> str:
    """A run's settings and versions, its trials (with the first line of each failure's
    error; the whole text too when ``errors``) and its best configuration; for an
    experiment directory, the grid of methods and seeds and how far it got."""
    if is_experiment(run_dir):
        return show_experiment(run_dir)
    result = load_run(run_dir)
    out = [f"run {run_dir}", *_reproducibility_lines(result.meta)]
    out.append(f"  {len(result.trials)} trials: {_status_counts(result)}")
    out += [f"    {n} failed with: {error}" for n, error in result.failure_counts()]
    out.append("")
    out.append(trials_table(result, limit))
    if errors and result.failed:
        out += ["", "errors:", *("  " + line for line in _error_lines(result, limit))]
    out.append("")
    out += _answer_lines(result)
    return "\n".join(out)


def _answer_lines(result: Result) -> list[str]:
    """The best trial, or for several objectives the trials on the Pareto front."""
    if result.is_multiobjective:
        front = result.pareto_front()
        lines = [f"Pareto front of {result.metric}: {len(front)} trials"]
        for trial in front:
            lines.append(f"  trial {trial.trial_id}: {_format_value(trial.value)}  "
                         + json.dumps(trial.config))
        return lines
    best = result.best
    if best is None:
        return ["no completed trial yet"]
    return [f"best trial {best.trial_id}: value {best.value:.6g}", "  " + json.dumps(best.config)]


def show_experiment(directory: str) -> str:
    description = json.loads((Path(directory) / EXPERIMENT_FILE).read_text())
    finished = description.get("finished", {})
    seeds = description.get("seeds", [])
    out = [f"experiment {directory}",
           f"  target {description.get('target')}  tuner {description.get('tuner')}",
           f"  settings {json.dumps(description.get('settings', {}), sort_keys=True)}"
           f"  optimum {description.get('optimum')}",
           f"  seeds {seeds}",
           f"  created {_timestamp(description.get('created'))}"]
    versions = description.get("versions", {})
    if versions:
        out.append("  versions " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    out.append("  space " + json.dumps(description.get("space", {})))
    out.append("")
    rows = []
    for method in description.get("methods", []):
        done = sum(f"{method['name']}/seed_{s}" in finished for s in seeds)
        scheduler = method.get("scheduler") or "-"
        rows.append([method["name"], method.get("searcher", "-"),
                     json.dumps(method.get("searcher_options", {}), sort_keys=True), scheduler,
                     json.dumps(method.get("options", {}), sort_keys=True),
                     f"{done}/{len(seeds)}"])
    out.append(format_table(["method", "searcher", "searcher options", "scheduler", "options",
                             "runs finished"], rows))
    return "\n".join(out)


def compare_table(directory: str, *, x: str = "time", quantity: str = "value",
                  statistic: str = "median", target: float | None = None,
                  confidence: float = 0.95, num_resamples: int = 1000, seed: int = 0) -> str:
    """The ``jhpo compare`` table: one row per method."""
    record = load_experiment(directory)
    rows = compare(record, x=x, quantity=quantity, statistic=statistic, target=target,
                   confidence=confidence, num_resamples=num_resamples, seed=seed)
    unit = {"time": " (s)", "evals": " (evals)"}.get(x, f" ({x})")
    header = ["method", "runs", f"final {statistic}", f"{confidence:.0%} CI", "final rank",
              "mean rank"]
    if target is not None:
        header += [f"to reach {target:g}{unit}", "reached"]
    lines = []
    for row in sorted(rows, key=lambda r: (math.isnan(r.final_rank), r.final_rank)):
        line = [row.name, str(row.num_runs), _format_value(row.final),
                f"[{_format_value(row.final_lower)}, {_format_value(row.final_upper)}]",
                f"{row.final_rank:.2f}", f"{row.mean_rank:.2f}"]
        if target is not None:
            reach = "never" if math.isinf(row.time_to_target) else f"{row.time_to_target:.4g}"
            line += [reach, f"{row.reached}/{row.num_runs}"]
        lines.append(line)
    what = {"value": record.metric or "value", "regret": "regret",
            "normalised_regret": "normalised regret"}[quantity]
    note = (f"{what} of the final incumbent, {statistic} over seeds with a bootstrap CI; "
            "ranks averaged over seeds (1 = best)")
    return format_table(header, lines) + "\n\n" + note


def plot(path: str, output: str, *, kind: str = "anytime", x: str = "time",
         quantity: str = "value", statistic: str = "median", confidence: float = 0.95,
         num_resamples: int = 1000, seed: int = 0, log_x: bool = False,
         log_y: bool | None = None, metrics: list[str] | None = None, run: str | None = None,
         title: str | None = None) -> list[Path]:
    """Draw ``kind`` for a run or experiment directory and write it as PNG and PDF."""
    from jhpo import plot as plotting

    if kind == "anytime":
        record = load_experiment(path)
        summary = summarise(record, x=x, quantity=quantity, statistic=statistic,
                            log_grid=log_x, confidence=confidence,
                            num_resamples=num_resamples, seed=seed)
        figure = plotting.anytime_figure(summary, title=title, log_x=log_x, log_y=log_y)
    elif kind in ("trials", "pareto", "curves"):
        run_path = _run_path(path, run, kind)
        result = load_run(run_path)
        if kind == "trials":
            figure = plotting.trials_figure(result, title=title)
        elif kind == "pareto":
            figure = plotting.pareto_figure(result, _pareto_metrics(result, metrics), title=title)
        else:
            figure = plotting.curves_figure(result, RunDirectory(run_path).read_reports(),
                                            _curve_metric(result, metrics), title=title)
    else:
        raise ValueError(f"kind={kind!r} must be one of {list(plotting.KINDS)}")
    return plotting.save_figure(figure, output)


def _run_path(path: str, run: str | None, kind: str) -> Path:
    if run is not None:
        return Path(path) / run
    if is_experiment(path):
        raise ValueError(f"--kind {kind} draws one run: pass --run METHOD/seed_K to pick one of "
                         f"the experiment {path!r}, or give a run directory")
    return Path(path)


def _curve_metric(result: Result, metrics: list[str] | None) -> str:
    if metrics:
        if len(metrics) != 1:
            raise ValueError(f"--kind curves draws one metric; --metrics gave {len(metrics)}")
        return metrics[0]
    recorded = result.meta.get("metric")
    recorded = recorded[0] if isinstance(recorded, list) else recorded
    if recorded is None:
        raise ValueError("--kind curves needs --metrics NAME (the run did not name its metric)")
    return recorded


def _pareto_metrics(result: Result, metrics: list[str] | None) -> list[str]:
    if metrics:
        if len(metrics) != 2:
            raise ValueError(f"--kind pareto draws two metrics; --metrics gave {len(metrics)}")
        return metrics
    recorded = result.meta.get("metric")
    if isinstance(recorded, list) and len(recorded) == 2:
        return recorded
    raise ValueError("--kind pareto needs --metrics A B (the run did not optimise exactly "
                     "two metrics)")


_DESCRIPTION = """Inspect, plot and compare jhpo runs and experiments.

A run directory is what jhpo.tune(..., run_dir=DIR) writes (meta.json, trials.jsonl).
An experiment directory is what jhpo.experiment.run_experiment writes: experiment.json
and one run directory per method and seed (EXP/<method>/seed_<k>)."""


def _add_aggregation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--x", default="time", metavar="AXIS",
        help="what the incumbent is measured against: 'time' (wall-clock seconds from the "
             "run's first trial), 'evals' (trials evaluated, failed ones included), "
             "'resource' (sum of the resource each trial reached, e.g. epochs) or the name of "
             "a per-trial metric to sum, e.g. a step count (default: time)")
    parser.add_argument(
        "--quantity", default="value", choices=QUANTITIES,
        help="'value': the metric itself; 'regret': distance to the optimum recorded in "
             "experiment.json; 'normalised_regret': regret divided by that of the worst value "
             "any trial reported, so 1 is the worst and 0 the optimum (default: value)")
    parser.add_argument(
        "--statistic", default="median", choices=STATISTICS,
        help="how seeds are aggregated: 'median', or 'iqm', the interquartile mean (mean of "
             "the middle half of the runs) (default: median)")
    parser.add_argument(
        "--confidence", type=float, default=0.95,
        help="coverage of the percentile-bootstrap band over seeds, in (0, 1) (default: 0.95)")
    parser.add_argument(
        "--resamples", type=int, default=1000,
        help="bootstrap resamples of the seeds (default: 1000)")
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of the bootstrap resampling, so the band is reproducible (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jhpo", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    show_parser = commands.add_parser(
        "show", help="print a run's settings, versions, trials and best configuration",
        description="Print what a run used (jhpo, jax and jaxlib versions, devices, the full "
                    "search space, searcher and scheduler settings, seed), a table of its "
                    "trials and its best configuration. Given an experiment directory, print "
                    "its grid of methods and seeds and how many runs have finished.")
    show_parser.add_argument("run_dir", help="a run directory (meta.json) or an experiment "
                                             "directory (experiment.json)")
    show_parser.add_argument("--limit", type=int, default=None,
                             help="print at most this many trials (default: all)")
    show_parser.add_argument("--errors", action="store_true",
                             help="print the whole error text of each failed trial, not only "
                                  "its first line")

    plot_parser = commands.add_parser(
        "plot", help="draw anytime curves, trials over time or a Pareto front (PNG and PDF)",
        description="Draw a figure and save it as PNG and PDF (FILE's suffix is replaced).")
    plot_parser.add_argument("path", metavar="RUN_OR_EXPERIMENT_DIR",
                             help="a run directory or an experiment directory")
    plot_parser.add_argument("-o", "--output", required=True, metavar="FILE",
                             help="where to write the figure, e.g. figs/anytime.png (a .pdf is "
                                  "written next to it)")
    plot_parser.add_argument(
        "--kind", default="anytime", choices=("anytime", "trials", "pareto", "curves"),
        help="'anytime': best-so-far of every method against --x, aggregated over seeds with "
             "a bootstrap band, and the methods' average rank below; 'trials': one bar per "
             "trial from start to end, coloured by outcome (completed, stopped, failed), with "
             "PBT parents joined to their children; 'pareto': two metrics of every trial and "
             "their Pareto front; 'curves': every trial's reported metric against the "
             "resource, from reports.jsonl (default: anytime)")
    _add_aggregation_options(plot_parser)
    plot_parser.add_argument("--log-x", action="store_true",
                             help="logarithmic x axis (and grid), for runs whose early "
                                  "progress matters")
    y_scale = plot_parser.add_mutually_exclusive_group()
    y_scale.add_argument("--log-y", dest="log_y", action="store_const", const=True, default=None,
                         help="logarithmic y axis (default: on when every value is positive "
                              "and they span more than a factor of 20, as regret often does)")
    y_scale.add_argument("--linear-y", dest="log_y", action="store_const", const=False,
                         help="linear y axis even when the values span decades")
    plot_parser.add_argument("--metrics", nargs="+", metavar="NAME", default=None,
                             help="the two metrics of a --kind pareto figure (default: the "
                                  "run's two objectives), or the one of a --kind curves "
                                  "figure (default: the run's first objective)")
    plot_parser.add_argument("--run", default=None, metavar="METHOD/seed_K",
                             help="for --kind trials, pareto or curves on an experiment: "
                                  "which run")
    plot_parser.add_argument("--title", default=None, help="a title above the figure")

    compare_parser = commands.add_parser(
        "compare", help="a table of an experiment's methods: final result, band, rank, "
                        "time to a target",
        description="One row per method, best first: the final incumbent's value "
                    "aggregated over seeds with its bootstrap confidence interval, the final "
                    "rank and the rank averaged over the run (1 = best; seeds are the "
                    "contests), and with --target how long runs took to reach it.")
    compare_parser.add_argument("path", metavar="EXPERIMENT_DIR",
                                help="an experiment directory (or a single run directory)")
    _add_aggregation_options(compare_parser)
    compare_parser.add_argument(
        "--target", type=float, default=None,
        help="a value of --quantity to reach (e.g. a validation error, or a regret): report "
             "the --statistic over seeds of the --x at which each run's incumbent first got "
             "at least that good (runs that never did count as never), and how many did")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; 0 on success, 2 for bad arguments or records, 1 when the system
    refuses a read or write (permissions, a full or read-only disk)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "show":
            if args.limit is not None and args.limit < 0:
                raise ValueError(f"--limit {args.limit}: must be 0 or more")
            print(show(args.run_dir, args.limit, errors=args.errors))
        elif args.command == "plot":
            written = plot(args.path, args.output, kind=args.kind, x=args.x,
                           quantity=args.quantity, statistic=args.statistic,
                           confidence=args.confidence, num_resamples=args.resamples,
                           seed=args.seed, log_x=args.log_x, log_y=args.log_y,
                           metrics=args.metrics, run=args.run, title=args.title)
            print("wrote " + ", ".join(str(p) for p in written))
        elif args.command == "compare":
            print(compare_table(args.path, x=args.x, quantity=args.quantity,
                                statistic=args.statistic, target=args.target,
                                confidence=args.confidence, num_resamples=args.resamples,
                                seed=args.seed))
    except ValueError as error:
        print(f"jhpo: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"jhpo: {_os_error_text(error)}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"jhpo: {_os_error_text(error)}", file=sys.stderr)
        return 1
    return 0


def _os_error_text(error: OSError) -> str:
    """``PATH: Permission denied``, as Unix tools say it, rather than the errno form."""
    if error.filename is None or error.strerror is None:
        return str(error)
    return f"{error.filename}: {error.strerror}"


if __name__ == "__main__":
    sys.exit(main())
