"""The ``jhpo`` command line."""

from __future__ import annotations

import argparse
import json
import sys

from jhpo.results import Result, load_run


def _format_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def trials_table(result: Result, limit: int | None = None) -> str:
    """A plain-text table: one row per trial, one column per parameter."""
    names: list[str] = []
    for trial in result.trials:
        names += [k for k in trial.config if k not in names]
    header = ["trial", "status", "value", "seconds", *names]
    trials = sorted(result.trials, key=lambda t: t.trial_id)
    if limit is not None:
        trials = trials[:limit]
    rows = [
        [str(t.trial_id), t.status, _format_value(t.value), f"{t.duration:.2f}",
         *[_format_value(t.config.get(n)) for n in names]]
        for t in trials
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
             for line in [header, *rows]]
    return "\n".join(lines)


def show(run_dir: str, limit: int | None = None) -> str:
    result = load_run(run_dir)
    meta = result.meta
    out = [f"run {run_dir}"]
    out.append(f"  searcher {meta.get('searcher')}  metric {meta.get('metric')}  "
               f"mode {meta.get('mode')}  seed {meta.get('seed')}")
    versions = meta.get("versions", {})
    if versions:
        out.append("  versions " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    out.append("  space " + json.dumps(meta.get("space", {})))
    out.append(f"  {len(result.trials)} trials: {len(result.completed)} completed, "
               f"{len(result.failed)} failed")
    out.append("")
    out.append(trials_table(result, limit))
    out.append("")
    best = result.best
    if best is None:
        out.append("no completed trial yet")
    else:
        out.append(f"best trial {best.trial_id}: value {best.value:.6g}")
        out.append("  " + json.dumps(best.config))
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jhpo", description="Inspect jhpo runs.")
    commands = parser.add_subparsers(dest="command", required=True)
    show_parser = commands.add_parser(
        "show", help="print a run's settings, a table of its trials and the best configuration"
    )
    show_parser.add_argument("run_dir", help="a run directory written by jhpo.tune (has meta.json)")
    show_parser.add_argument("--limit", type=int, default=None,
                             help="print at most this many trials (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "show":
            print(show(args.run_dir, args.limit))
    except (FileNotFoundError, ValueError) as error:
        print(f"jhpo: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
