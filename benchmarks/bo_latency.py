"""Time and memory of a BO ask (model fit + acquisition) against the number of observations.

For d = 6 (Hartmann-6) and n observations, the searcher is told n quasi-random rows at
once, then asked for rows in two ways: one row at a time at each n of ``--sizes`` (each
row told before the next ask), and ``--batch`` rows in one ask at each n of
``--batch-sizes`` (every timed ask from the same state, so n stays put). The first ask
pays for compilation; the tables report the median of the later ones and the compile time
apart. Each measurement runs in a process of its own, so the peak resident memory
reported (``ru_maxrss``) is that measurement's alone; ``setup`` is the peak before the
first ask (Python, JAX, the told buffers), the rest is what asking added. The fit with
restarts, which runs whenever n has grown by 25% since the last one, is timed apart
(``fit``).

Optuna's GPSampler is measured the same way (one row at a time) when optuna and torch
are installed, at increasing n until an ask takes longer than ``--optuna-limit`` seconds
(its process is then stopped, and larger n are skipped).

Where the time goes: the ``pieces`` table times jhpo's kernels one by one at each n of
``--sizes``: the log marginal likelihood and its gradient (on the rows the GP conditions
on) through our custom VJP versus reverse-mode through ``jnp.linalg.cholesky``, the fit
with restarts, the refinement between restarts, one acquisition maximisation, and the
compilation of the fit and proposal kernels.

Timings on a machine whose cores are shared are noisy; ``--cpu 0`` pins the processes to
one core before JAX starts its thread pool, which on small virtual machines removes long
stalls from threads waiting on each other. Where other processes share that core,
``--clock process`` counts the CPU seconds of the measuring process (every thread)
instead of wall-clock seconds: what the ask costs rather than how long it waited.
``--no-pieces`` skips the pieces table, whose kernels are the searcher's internals;
without it the script runs against another checkout of jhpo
(``PYTHONPATH=OTHER python benchmarks/bo_latency.py --no-pieces``), for a comparison
before and after a change.

    python benchmarks/bo_latency.py [--quick] [--json PATH] [--cpu N] [--sizes N ...]
        [--batch-sizes N ...] [--batch B] [--repeats N] [--clock wall|process]
        [--no-pieces] [--no-optuna] [--optuna-limit S]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from common import (add_cpu_argument, make_parser, optuna_available, pin_cpu, time_told_asks, versions,
                    write_json)

CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
# Seconds a measuring process may spend before its first ask (imports, the told data).
SETUP_ALLOWANCE_S = 300


def parse_args():
    parser = make_parser(__doc__, "n in (50, 200), batches at n = 200, fewer repeats",
                         "write the measurements here")
    add_cpu_argument(parser)
    parser.add_argument("--repeats", type=int, default=None, help="timed asks per n")
    parser.add_argument("--no-optuna", action="store_true", help="skip Optuna even if installed")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="n for one row per ask (default 50 100 200 400 800 2000 5000)")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=None,
                        help="n for batch asks (default 1000)")
    parser.add_argument("--batch", type=int, default=64, help="rows per batch ask")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall-clock seconds, or the measuring process's CPU seconds")
    parser.add_argument("--no-pieces", action="store_true", help="skip the pieces table")
    parser.add_argument("--optuna-limit", type=float, default=60.0,
                        help="seconds an Optuna ask may take before larger n are skipped")
    # Internal: run one measurement in this process and print it as JSON.
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    return parser.parse_args()


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def observations(problem, n, seed=0):
    """n Halton rows of the problem's space and their values (float32)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jhpo.searchers import make

    searcher = make("quasirandom", problem.space)
    rows, _, _ = searcher.ask(searcher.init(jax.random.key(seed)), jax.random.key(seed), n)
    configs = problem.space.to_configs(rows)
    # The problem's function is vectorised: one call on columns instead of n calls.
    columns = {name: np.asarray([c[name] for c in configs]) for name in configs[0]}
    return rows, jnp.asarray(problem.fn(columns), jnp.float32)


def told_state(problem, n, **options):
    import jax

    from jhpo.searchers.bo import bo

    searcher = bo(problem.space, **options)
    rows, values = observations(problem, n)
    return searcher, searcher.tell(searcher.init(jax.random.key(0)), rows, values)


def measure_jhpo(problem, n, repeats, clock, with_pieces):
    """One row per ask, each told before the next; then the fit with restarts alone."""
    import jax
    import jax.numpy as jnp

    from jhpo.searchers import bo as bo_module

    searcher, state = told_state(problem, n)
    setup_mib = peak_rss_mib()
    ask, compile_s, state = time_told_asks(searcher, state, problem, repeats, clock)
    config = bo_module.make_config(problem.space)
    due = state._replace(restarted_at=jnp.zeros((), jnp.int32))
    fit_s = _seconds(lambda: bo_module.update_fit(config, due, jax.random.key(1)).params,
                     repeats, clock)
    result = {"ask_s": ask, "compile_s": compile_s, "fit_s": fit_s,
              "setup_mib": setup_mib, "peak_mib": peak_rss_mib()}
    if with_pieces:
        result["pieces"] = time_pieces(problem, state, config, repeats, clock)
    return result


def measure_jhpo_batch(problem, n, batch, repeats, clock):
    """``batch`` rows per ask, every ask from the same told state."""
    import jax

    searcher, state = told_state(problem, n)
    setup_mib = peak_rss_mib()
    seconds = []
    for i in range(repeats + 1):
        start = clock()
        rows, _, fresh = searcher.ask(state, jax.random.key(i), batch)
        jax.block_until_ready(rows)
        seconds.append(clock() - start)
    ask = statistics.median(seconds[1:])
    return {"ask_s": ask, "compile_s": max(seconds[0] - ask, 0.0), "setup_mib": setup_mib,
            "peak_mib": peak_rss_mib(), "fresh": int(fresh.sum())}


def time_pieces(problem, state, config, repeats, clock):
    """Seconds per call of each jhpo kernel for ``state`` (compiled first)."""
    import jax
    import jax.numpy as jnp

    from jhpo import gp
    from jhpo.searchers import bo as bo_module
    from jhpo.searchers.bo import kernels
    from jhpo.searchers.bo.targets import fit_data, modelled_rows

    key = jax.random.key(1)
    with jax.enable_x64(True):
        x, targets, mask = fit_data(config.outputs, state.observed, warp=config.fit.warp)
        x, targets, mask = modelled_rows(config.fit.model_rows, x, targets, mask, key)
        y = targets[:, 0]  # one objective: one GP
        params = jax.tree.map(lambda p: p[0].astype(jnp.float64), state.params)
        exact = int(jnp.count_nonzero(mask))
        order = jnp.argsort(~mask, stable=True)[:exact]
        x_exact, y_exact = x[order], y[order]

        def through_cholesky(p):
            cov = gp.kernel(x_exact, x_exact, p) + jnp.exp(p.log_noise) * jnp.eye(exact)
            chol = jnp.linalg.cholesky(cov)
            residual = y_exact - p.mean
            alpha = jax.scipy.linalg.cho_solve((chol, True), residual)
            return -0.5 * residual @ alpha - jnp.log(jnp.diagonal(chol)).sum()

        gp_kernels = {
            "lml": jax.jit(lambda p: gp.log_marginal_likelihood(p, x, y, mask)),
            "grad_custom_vjp": jax.jit(jax.grad(lambda p: gp.log_marginal_likelihood(p, x, y, mask))),
            "grad_through_cholesky": jax.jit(jax.grad(through_cholesky)),
        }
        result = {name: _seconds(lambda f=f: f(params), repeats, clock)
                  for name, f in gp_kernels.items()}
    due = state._replace(restarted_at=jnp.zeros((), jnp.int32))
    not_due = state._replace(restarted_at=jnp.asarray(state.observed.count, jnp.int32))
    result["fit_with_restarts"] = _seconds(
        lambda: bo_module.update_fit(config, due, key).params, repeats, clock)
    result["fit_between_restarts"] = _seconds(
        lambda: bo_module.update_fit(config, not_due, key).params, repeats, clock)
    result["acquisition"] = _seconds(
        lambda: bo_module.propose(problem.space, config, state, key), repeats, clock)
    result["fit_compile"] = _compile_seconds(lambda: kernels.fit_kernel.lower(
        config.fit, config.outputs, state.observed, None, state.params, key, jnp.asarray(True)),
        clock)
    result["propose_compile"] = _compile_seconds(lambda: kernels.propose_kernel.lower(
        problem.space, config.propose, config.outputs, state.params, state.observed,
        state.pending, None, key), clock)
    return result


def _compile_seconds(lower, clock):
    """Seconds to trace, lower (``lower()``) and compile a kernel, the least of three tries
    (JAX's caches, which hold it, are cleared before each)."""
    import jax

    seconds = []
    for _ in range(3):
        jax.clear_caches()
        with jax.enable_x64(True):
            start = clock()
            lower().compile()
            seconds.append(clock() - start)
    return min(seconds)


def _seconds(call, repeats, clock):
    import jax

    jax.block_until_ready(call())
    seconds = []
    for _ in range(max(repeats, 3)):
        start = clock()
        jax.block_until_ready(call())
        seconds.append(clock() - start)
    return statistics.median(seconds)


def measure_optuna(problem, n, repeats, clock):
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    distributions = {
        name: optuna.distributions.FloatDistribution(domain.lo, domain.hi)
        for name, domain in problem.space.domains.items()
    }
    rows, values = observations(problem, n)
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=0))
    study.add_trials([optuna.trial.create_trial(params=config, distributions=distributions,
                                                value=float(value))
                      for config, value in zip(problem.space.to_configs(rows), np.asarray(values))])
    setup_mib = peak_rss_mib()
    seconds = []
    for _ in range(repeats + 1):
        start = clock()
        trial = study.ask(distributions)
        seconds.append(clock() - start)
        study.tell(trial, problem(trial.params))
    ask = statistics.median(seconds[1:])
    return {"ask_s": ask, "compile_s": max(seconds[0] - ask, 0.0), "setup_mib": setup_mib,
            "peak_mib": peak_rss_mib()}


def run_measurement(args, kind, n, timeout):
    """Run one measurement in a fresh process; its result, or None past ``timeout``."""
    command = [sys.executable, os.path.abspath(__file__), "--measure", kind, str(n),
               "--repeats", str(args.repeats), "--clock", args.clock, "--batch", str(args.batch)]
    command += ["--no-pieces"] if args.no_pieces else []
    command += [] if args.cpu is None else ["--cpu", str(args.cpu)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as error:
        sys.exit(f"{kind} at n={n} failed:\n{error.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_in_this_process(args):
    from jhpo import problems

    kind, n = args.measure[0], int(args.measure[1])
    problem = problems.hartmann6()
    clock = CLOCKS[args.clock]
    if kind == "jhpo":
        result = measure_jhpo(problem, n, args.repeats, clock, not args.no_pieces)
    elif kind == "jhpo_batch":
        result = measure_jhpo_batch(problem, n, args.batch, args.repeats, clock)
    else:
        result = measure_optuna(problem, n, args.repeats, clock)
    print(json.dumps(result))


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    if args.measure:
        return measure_in_this_process(args)
    from jhpo import problems

    sizes = args.sizes or ([50, 200] if args.quick else [50, 100, 200, 400, 800, 2000, 5000])
    batch_sizes = (args.batch_sizes if args.batch_sizes is not None
                   else [200] if args.quick else [1000])
    args.repeats = args.repeats or (3 if args.quick else 7)
    use_optuna = optuna_available(torch=True) and not args.no_optuna

    report = {"jhpo": [], "jhpo_batch": [], "optuna_gp": [] if use_optuna else None}
    optuna_over_limit = False
    for n in sizes:
        result = run_measurement(args, "jhpo", n, None)
        report["jhpo"].append({"n": n, **result})
        line = f"n={n:5d} jhpo ask {1e3 * result['ask_s']:8.1f} ms, fit {1e3 * result['fit_s']:7.1f} ms"
        if use_optuna and not optuna_over_limit:
            timeout = SETUP_ALLOWANCE_S + args.optuna_limit * (args.repeats + 1)
            optuna = run_measurement(args, "optuna", n, timeout)
            optuna_over_limit = optuna is None or optuna["ask_s"] > args.optuna_limit
            if optuna is not None:
                report["optuna_gp"].append({"n": n, **optuna})
                line += f"  optuna GPSampler {1e3 * optuna['ask_s']:8.1f} ms"
        print(line, flush=True)
    for n in batch_sizes:
        result = run_measurement(args, "jhpo_batch", n, None)
        report["jhpo_batch"].append({"n": n, "batch": args.batch, **result})
        print(f"n={n:5d} jhpo ask({args.batch}) {1e3 * result['ask_s']:8.1f} ms", flush=True)
    report["versions"] = versions(devices=True, extras=("optuna", "torch"))
    report["settings"] = {"dim": 6, "problem": problems.hartmann6().name,
                          "repeats": args.repeats, "cpu": args.cpu, "clock": args.clock,
                          "optuna_limit_s": args.optuna_limit, "load": os.getloadavg()}
    print_tables(report)
    write_json(args.json, report, indent=2)


def print_tables(report):
    clock = report["settings"]["clock"]
    optuna = {row["n"]: row for row in report["optuna_gp"] or []}
    print(f"\nmedian seconds of one ask, d = 6 (compile time apart; {clock} clock; "
          "memory: peak RSS of the measuring process)")
    header = ("| n | rows per ask | jhpo ask (ms) | jhpo fit with restarts (ms) | "
              "jhpo compile (s) | jhpo setup / peak (MiB) |")
    if report["optuna_gp"] is not None:
        header += " Optuna GPSampler ask (ms) | Optuna setup / peak (MiB) | Optuna / jhpo |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows = [(r, 1) for r in report["jhpo"]] + [(r, r["batch"]) for r in report["jhpo_batch"]]
    for row, rows_per_ask in rows:
        fit = f"{1e3 * row['fit_s']:.1f}" if "fit_s" in row else "-"
        line = (f"| {row['n']} | {rows_per_ask} | {1e3 * row['ask_s']:.1f} | {fit} | "
                f"{row['compile_s']:.1f} | {row['setup_mib']:.0f} / {row['peak_mib']:.0f} |")
        if report["optuna_gp"] is not None:
            other = optuna.get(row["n"]) if rows_per_ask == 1 else None
            line += (f" {1e3 * other['ask_s']:.1f} | {other['setup_mib']:.0f} / "
                     f"{other['peak_mib']:.0f} | {other['ask_s'] / row['ask_s']:.1f}x |"
                     if other else " - | - | - |")
        print(line)
    pieces = [(r["n"], r["pieces"]) for r in report["jhpo"] if "pieces" in r]
    if not pieces:
        return
    names = list(pieces[0][1])
    print("\nwhere jhpo's time goes (ms per call)")
    print("| n | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for n, piece in pieces:
        print(f"| {n} | " + " | ".join(f"{1e3 * piece[k]:.2f}" for k in names) + " |")


if __name__ == "__main__":
    main()
