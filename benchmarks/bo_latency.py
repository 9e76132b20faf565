"""Time of one BO ask (model fit + acquisition) against the number of observations.

For d = 6 (Hartmann-6) and n observations, the searcher is told n quasi-random
rows at once, then asked for one row at a time (each row told before the next
ask). The first ask pays for compilation; the table reports the median of the
later ones and the compile time apart. Optuna's GPSampler is measured the same
way when optuna (and torch) are installed.

Where the time goes: the ``pieces`` table times jhpo's kernels one by one at
each n: the log marginal likelihood and its gradient through our custom VJP
versus reverse-mode through ``jnp.linalg.cholesky``, the fit with restarts, the
refinement between restarts, one acquisition maximisation, and the compilation
of the fit and proposal kernels.

Timings on a machine whose cores are shared are noisy; ``--cpu 0`` pins the
process to one core before JAX starts its thread pool, which on small virtual
machines removes long stalls from threads waiting on each other. Where other
processes share that core, ``--clock process`` counts the CPU seconds of this
process (every thread) instead of wall-clock seconds: what the ask costs rather
than how long it waited. ``--no-pieces`` skips the pieces table, whose kernels are
the searcher's internals; without it the script runs against another checkout of
jhpo (``PYTHONPATH=OTHER python benchmarks/bo_latency.py --no-pieces``), for a
comparison before and after a change.

    python benchmarks/bo_latency.py [--quick] [--json PATH] [--cpu N] [--sizes N ...]
        [--repeats N] [--clock wall|process] [--no-pieces] [--no-optuna]
"""

from __future__ import annotations

import statistics
import time

from common import add_cpu_argument, make_parser, optuna_available, pin_cpu, versions, write_json


def parse_args():
    parser = make_parser(__doc__, "n in (50, 200), fewer repeats", "write the measurements here")
    add_cpu_argument(parser)
    parser.add_argument("--repeats", type=int, default=None, help="timed asks per n")
    parser.add_argument("--no-optuna", action="store_true", help="skip Optuna even if installed")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="numbers of observations (default 50 100 200 400 800)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall-clock seconds, or this process's CPU seconds")
    parser.add_argument("--no-pieces", action="store_true", help="skip the pieces table")
    return parser.parse_args()


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def median_ms(seconds):
    return round(1e3 * statistics.median(seconds), 2)


def observations(problem, n, seed=0):
    """n Halton rows of the problem's space and their values (float32)."""
    import jax
    import jax.numpy as jnp

    from jhpo.searchers import make

    searcher = make("quasirandom", problem.space)
    rows, _, _ = searcher.ask(searcher.init(jax.random.key(seed)), jax.random.key(seed), n)
    values = [problem(config) for config in problem.space.to_configs(rows)]
    return rows, jnp.asarray(values, jnp.float32)


def time_jhpo(problem, n, repeats, clock):
    import jax
    import jax.numpy as jnp

    from jhpo.searchers.bo import bo

    searcher = bo(problem.space)
    rows, values = observations(problem, n)
    state = searcher.tell(searcher.init(jax.random.key(0)), rows, values)
    seconds = []
    for i in range(repeats + 1):
        start = clock()
        row, state, _ = searcher.ask(state, jax.random.key(i), 1)
        jax.block_until_ready(row)
        seconds.append(clock() - start)
        value = problem(problem.space.to_configs(row)[0])
        state = searcher.tell(state, row, jnp.asarray([value], jnp.float32))
    ask = statistics.median(seconds[1:])
    return ask, max(seconds[0] - ask, 0.0)


def time_pieces(problem, n, repeats, clock):
    """Seconds per call of each jhpo kernel at n observations (compiled first)."""
    import jax
    import jax.numpy as jnp

    from jhpo import gp
    from jhpo.searchers import bo as bo_module
    from jhpo.searchers.bo import kernels
    from jhpo.searchers.bo.targets import fit_data

    searcher = bo_module.bo(problem.space)
    rows, values = observations(problem, n)
    state = searcher.tell(searcher.init(jax.random.key(0)), rows, values)
    _, state, _ = searcher.ask(state, jax.random.key(0), 1)  # fitted, with one row pending
    config = bo_module.make_config(problem.space)
    with jax.enable_x64(True):
        x, targets, mask = fit_data(config.outputs, state.observed, warp=config.fit.warp)
        y = targets[:, 0]  # one objective: one GP
        params = jax.tree.map(lambda p: p[0].astype(jnp.float64), state.params)
        exact = jnp.count_nonzero(mask)
        x_exact, y_exact = x[:exact], y[:exact]

        def through_cholesky(p):
            cov = gp.kernel(x_exact, x_exact, p) + jnp.exp(p.log_noise) * jnp.eye(x_exact.shape[0])
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
    key = jax.random.key(1)
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


def time_optuna(problem, n, repeats, clock):
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    distributions = {
        name: optuna.distributions.FloatDistribution(domain.lo, domain.hi)
        for name, domain in problem.space.domains.items()
    }
    rows, values = observations(problem, n)
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=0))
    for config, value in zip(problem.space.to_configs(rows), np.asarray(values)):
        study.add_trial(optuna.trial.create_trial(
            params=config, distributions=distributions, value=float(value)))
    seconds = []
    for _ in range(repeats + 1):
        start = clock()
        trial = study.ask(distributions)
        seconds.append(clock() - start)
        study.tell(trial, problem(trial.params))
    ask = statistics.median(seconds[1:])
    return ask, max(seconds[0] - ask, 0.0)


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    clock = CLOCKS[args.clock]
    from jhpo import problems

    sizes = args.sizes or ([50, 200] if args.quick else [50, 100, 200, 400, 800])
    repeats = args.repeats or (3 if args.quick else 7)
    problem = problems.hartmann6()
    use_optuna = optuna_available(torch=True) and not args.no_optuna

    report = {"jhpo": {"n": [], "ask_s": [], "compile_s": []}, "jhpo_pieces": {"n": []}}
    if use_optuna:
        report["optuna_gp"] = {"n": [], "ask_s": [], "compile_s": []}
    for n in sizes:
        ask, compile_s = time_jhpo(problem, n, repeats, clock)
        _record(report["jhpo"], n, ask, compile_s)
        line = f"n={n:4d} jhpo ask {1e3 * ask:8.1f} ms (compile {compile_s:5.1f} s)"
        if use_optuna:
            ask_o, compile_o = time_optuna(problem, n, repeats, clock)
            _record(report["optuna_gp"], n, ask_o, compile_o)
            line += f"  optuna GPSampler {1e3 * ask_o:8.1f} ms  ratio {ask_o / ask:5.1f}x"
        print(line, flush=True)
    # After every ask is timed: timing the compilations clears JAX's caches.
    for n in [] if args.no_pieces else sizes:
        pieces = time_pieces(problem, n, repeats, clock)
        report["jhpo_pieces"]["n"].append(n)
        for name, seconds in pieces.items():
            report["jhpo_pieces"].setdefault(name + "_s", []).append(seconds)
    report["versions"] = versions(devices=True, extras=("optuna", "torch"))
    report["settings"] = {"dim": 6, "problem": problem.name, "repeats": repeats, "cpu": args.cpu,
                          "clock": args.clock}
    print_tables(report)
    write_json(args.json, report, indent=2)


def _record(table, n, ask, compile_s):
    table["n"].append(n)
    table["ask_s"].append(ask)
    table["compile_s"].append(compile_s)


def print_tables(report):
    jhpo_table = report["jhpo"]
    optuna = report.get("optuna_gp")
    clock = report["settings"]["clock"]
    print(f"\nmedian seconds of one ask, d = 6 (compile time apart; {clock} clock)")
    header = "| n | jhpo bo ask (ms) | jhpo compile (s) |"
    header += " Optuna GPSampler ask (ms) | speed-up |" if optuna else ""
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for i, n in enumerate(jhpo_table["n"]):
        row = f"| {n} | {1e3 * jhpo_table['ask_s'][i]:.1f} | {jhpo_table['compile_s'][i]:.1f} |"
        if optuna:
            row += f" {1e3 * optuna['ask_s'][i]:.1f} | {optuna['ask_s'][i] / jhpo_table['ask_s'][i]:.1f}x |"
        print(row)
    pieces = report["jhpo_pieces"]
    names = [k for k in pieces if k != "n"]
    if not names:
        return
    print("\nwhere jhpo's time goes (ms per call)")
    print("| n | " + " | ".join(k[:-2] for k in names) + " |")
    print("|---|" + "---|" * len(names))
    for i, n in enumerate(pieces["n"]):
        print(f"| {n} | " + " | ".join(f"{1e3 * pieces[k][i]:.2f}" for k in names) + " |")


if __name__ == "__main__":
    main()
