"""Time of one TPE ask against the number of observations, beside Optuna's multivariate TPE.

For each problem and each n, jhpo's ``tpe`` searcher is told n uniform random rows at
once, then asked for one row at a time, each row told before the next ask (the
observed buffer keeps its capacity, so only the first ask compiles). The table gives
the median of the later asks, the first ask's extra time (compilation) and, when
optuna is installed, the median ask of ``optuna.samplers.TPESampler(multivariate=True)``
given the same n trials, measured in the same run, with the ratio jhpo / Optuna.

Pin the process to one core (``--cpu 1``) on a shared machine: XLA's threads stall on
each other otherwise. ``--clock process`` counts this process's CPU seconds instead of
wall-clock seconds.

    python benchmarks/tpe_latency.py [--quick] [--json PATH] [--cpu N] [--sizes N ...]
        [--problems NAME ...] [--repeats N] [--clock wall|process] [--no-optuna]
"""

from __future__ import annotations

import statistics
import time

from common import (add_cpu_argument, make_parser, optuna_available, pin_cpu, time_told_asks, versions,
                    write_json)

CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def parse_args():
    parser = make_parser(__doc__, "hartmann6 only, n in (200, 1000), fewer repeats",
                         "write the measurements here")
    add_cpu_argument(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="numbers of observations (default 100 200 500 1000 2000)")
    parser.add_argument("--problems", nargs="+", default=None,
                        help="jhpo.problems names (default hartmann6 mixed)")
    parser.add_argument("--repeats", type=int, default=None, help="timed asks per n")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall-clock seconds, or this process's CPU seconds")
    parser.add_argument("--no-optuna", action="store_true", help="skip Optuna even if installed")
    return parser.parse_args()


def observations(problem, n, seed=0):
    """n uniform random rows of the problem's space and their values (float32). The sizes
    leave room for the timed asks below the next power of two, so the capacity stays."""
    import jax
    import jax.numpy as jnp

    rows = problem.space.sample(jax.random.key(seed), n)
    values = [problem(config) for config in problem.space.to_configs(rows)]
    return rows, jnp.asarray(values, jnp.float32)


def time_jhpo(problem, rows, values, repeats, clock):
    """Median seconds of a later ask, and the first ask's extra seconds."""
    import jax

    from jhpo.searchers import make

    searcher = make("tpe", problem.space)
    state = searcher.tell(searcher.init(jax.random.key(0)), rows, values)
    ask, first_extra, _ = time_told_asks(searcher, state, problem, repeats, clock)
    return ask, first_extra


def time_optuna(problem, rows, values, repeats, clock):
    """Median seconds of an ask of Optuna's multivariate TPE told the same trials."""
    import numpy as np
    import optuna
    from bo_synthetic import optuna_distributions

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    distributions = optuna_distributions(problem.space)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(multivariate=True, seed=0))
    study.add_trials([
        optuna.trial.create_trial(params=config, distributions=distributions, value=float(value))
        for config, value in zip(problem.space.to_configs(rows), np.asarray(values))])
    seconds = []
    for _ in range(repeats):
        start = clock()
        trial = study.ask(distributions)
        seconds.append(clock() - start)
        study.tell(trial, problem(trial.params))
    return statistics.median(seconds)


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    clock = CLOCKS[args.clock]
    from jhpo import problems

    names = args.problems or (["hartmann6"] if args.quick else ["hartmann6", "mixed"])
    sizes = args.sizes or ([200, 1000] if args.quick else [100, 200, 500, 1000, 2000])
    repeats = args.repeats or (5 if args.quick else 15)
    with_optuna = optuna_available() and not args.no_optuna
    measurements = []
    for name in names:
        problem = problems.get(name)
        for n in sizes:
            rows, values = observations(problem, n)
            ask, compile_s = time_jhpo(problem, rows, values, repeats, clock)
            entry = {"problem": name, "n": n, "jhpo_ask_ms": round(1e3 * ask, 3),
                     "jhpo_compile_s": round(compile_s, 2)}
            if with_optuna:
                optuna_ask = time_optuna(problem, rows, values, repeats, clock)
                entry["optuna_ask_ms"] = round(1e3 * optuna_ask, 3)
                entry["ratio"] = round(ask / optuna_ask, 4)
            measurements.append(entry)
            print(entry, flush=True)
    print(f"\nmedian ask, {args.clock} clock, {repeats} asks per n")
    print("| problem | n | jhpo tpe ask ms (compile s) | Optuna TPE ask ms | jhpo / Optuna |")
    print("|---|---|---|---|---|")
    for m in measurements:
        optuna_cell = f"{m['optuna_ask_ms']:.2f} | {m['ratio']:.3f}" if with_optuna else "- | -"
        print(f"| {m['problem']} | {m['n']} | {m['jhpo_ask_ms']:.2f} ({m['jhpo_compile_s']:.1f})"
              f" | {optuna_cell} |")
    write_json(args.json, {"measurements": measurements,
                           "versions": versions(devices=True, extras=("optuna",)),
                           "settings": {"sizes": sizes, "repeats": repeats, "clock": args.clock,
                                        "cpu": args.cpu}})


if __name__ == "__main__":
    main()
