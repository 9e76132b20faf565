"""Trials on several workers: throughput of a sleeping objective, and time to a target regret.

Throughput: random search on an objective that sleeps 0.5 s, with k = 1, 2, 4 and 8
workers, local (k = 1 runs in the driver's process) and Ray (a local instance with 8 CPUs,
warmed up first so that its worker processes have started). Per setting:
  trials/s      steady state: trials started per second from the k-th start (every worker
                busy) to the last; speed-up against the local k = 1 of the same run;
  efficiency    (0.5 s / k) / (seconds per trial), 1 for a perfect pool;
  driver ms     the driver's CPU time per trial (process time of the tune() call over the
                trials: asks, tells, records, messages; Ray's client threads included);
  gap ms        the median time from a trial's end, as its worker saw it, to the start of
                the trial that took its slot: the driver's overhead plus the wait behind
                trials that ended at the same moment (with a fixed sleep, k at once);
  wall-clock    the whole tune() call, start-up of the workers included.

Time to target: Branin, whose evaluation sleeps 0.2 s to 2 s as x1 grows (a cost that
varies, as training does), with 4 asynchronous workers against 1, for async BO, random
search and ASHA (random search; the objective reports 9 epochs whose loss falls to
Branin's value, sleeping a ninth of the cost each). Each run has a wall-clock budget
(BO --budget-s, random search and ASHA half of it: they reach only the looser targets);
per method and worker count, the median over seeds of the seconds (from the tune() call)
until the best value is within 1, 0.1 and 0.01 of the optimum ("-": not reached in the
budget by half the seeds or more), and the ratio of 4 workers to 1.

    python benchmarks/workers.py [--quick] [--json PATH] [--cpu N] [--seeds N]
                                 [--budget-s S] [--parts throughput target] [--no-ray]
"""

from __future__ import annotations

import math
import os
import statistics
import time

from common import add_cpu_argument, make_parser, modules_available, pin_cpu, versions, write_json

WORKER_COUNTS = (1, 2, 4, 8)
SLEEP_S = 0.5
BRANIN_OPTIMUM = 0.397887357729738
TARGETS = (1.0, 0.1, 0.01)
METHODS = {"bo": ("bo", None), "random": ("random", None), "asha": ("random", "asha")}
EPOCHS = 9


def parse_args():
    parser = make_parser(__doc__, "fewer trials per worker, 2 seeds, shorter budgets",
                         "write every measurement here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (5; quick 2)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-clock budget of one BO run to the target (120; quick 60)")
    parser.add_argument("--parts", nargs="+", choices=["throughput", "target"],
                        default=["throughput", "target"])
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    add_cpu_argument(parser)
    return parser.parse_args()


# ----------------------------------------------------------------------------- objectives
# Defined in __main__, so cloudpickle sends them by value: a worker needs nothing of this
# script's imports (jhpo, JAX) to run them.

def sleeping(config):
    time.sleep(SLEEP_S)
    return config["x"]


def branin(config):
    x1, x2 = config["x1"], config["x2"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def cost_s(config):
    """0.2 s at x1 = -5 to 2 s at x1 = 10."""
    return 0.2 + 1.8 * (config["x1"] + 5.0) / 15.0


def branin_space() -> dict:
    import jhpo

    return {"x1": jhpo.uniform(-5.0, 10.0), "x2": jhpo.uniform(0.0, 15.0)}


def sleeping_branin(config):
    time.sleep(cost_s(config))
    return branin(config)


def sleeping_branin_curve(config, report):
    """Nine epochs; the loss falls to Branin's value at the last one."""
    value = branin(config)
    for epoch in range(1, EPOCHS + 1):
        time.sleep(cost_s(config) / EPOCHS)
        report(epoch, {"loss": value + 0.5 * (EPOCHS / epoch - 1.0)})
    return {"loss": value}


# ----------------------------------------------------------------------------- throughput

def slot_gap_s(trials, workers: int) -> float:
    """Median time from the end of the trial that freed a slot to the start of the trial
    that took it: with one new trial per end, the i-th start follows the (i-k)-th end."""
    starts = sorted(t.start_time for t in trials)
    ends = sorted(t.end_time for t in trials)
    return statistics.median(starts[i] - ends[i - workers] for i in range(workers, len(starts)))


def steady_trials_per_s(trials, workers: int) -> float:
    """Trials started per second once every worker is busy (the k-th start on)."""
    starts = sorted(t.start_time for t in trials)
    return (len(starts) - workers) / (starts[-1] - starts[workers - 1])


def throughput(workers: int, backend: str, per_worker: int) -> dict:
    import jhpo

    began, cpu_began = time.perf_counter(), time.process_time()
    result = jhpo.tune(sleeping, {"x": jhpo.uniform(0.0, 1.0)}, num_trials=per_worker * workers,
                       workers=workers, backend=backend, progress=False)
    wallclock, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    trials = result.trials
    per_second = steady_trials_per_s(trials, workers)
    return {"backend": backend, "workers": workers, "trials": len(trials),
            "trials_per_s": per_second, "efficiency": SLEEP_S * per_second / workers,
            "driver_ms": 1e3 * cpu / len(trials), "gap_ms": 1e3 * slot_gap_s(trials, workers),
            "wallclock_s": wallclock}


def warm_up(num_trials: int, workers: int, backend: str) -> None:
    """Instant trials, so that the searcher's functions are compiled for every buffer size
    the timed runs reach (capacity doubles), and Ray's worker processes have started."""
    import jhpo

    jhpo.tune(lambda config: config["x"], {"x": jhpo.uniform(0.0, 1.0)}, num_trials=num_trials,
              workers=workers, backend=backend, progress=False)


def throughput_part(quick: bool, ray: bool) -> list[dict]:
    per_worker = 4 if quick else 8
    warm_up(per_worker * max(WORKER_COUNTS), 1, "local")
    rows = [throughput(k, "local", per_worker) for k in WORKER_COUNTS]
    if ray:
        import ray as ray_module

        ray_module.init(num_cpus=max(WORKER_COUNTS), include_dashboard=False, log_to_driver=False)
        try:
            warm_up(2 * max(WORKER_COUNTS), max(WORKER_COUNTS), "ray")
            rows += [throughput(k, "ray", per_worker) for k in WORKER_COUNTS]
        finally:
            ray_module.shutdown()
    baseline = rows[0]["trials_per_s"]
    for row in rows:
        row["speedup"] = row["trials_per_s"] / baseline
    return rows


def print_throughput(rows: list[dict]) -> None:
    print(f"Throughput, {SLEEP_S} s sleep objective (speed-up against local k = 1):")
    print("| backend | workers | trials | trials/s | speed-up | efficiency | driver ms/trial "
          "| gap ms | wall-clock s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['workers']} | {r['trials']} | {r['trials_per_s']:.2f} | "
              f"{r['speedup']:.2f}x | {r['efficiency']:.2f} | {r['driver_ms']:.1f} | "
              f"{r['gap_ms']:.1f} | {r['wallclock_s']:.1f} |")


# ----------------------------------------------------------------------------- time to target

def seconds_to_targets(trials, began: float) -> list[float | None]:
    """Per target, the seconds from ``began`` until a finished trial came within it."""
    reached: list[float | None] = [None] * len(TARGETS)
    best = math.inf
    for trial in sorted(trials, key=lambda t: t.end_time):
        if trial.ok:
            best = min(best, trial.value - BRANIN_OPTIMUM)
        for i, target in enumerate(TARGETS):
            if reached[i] is None and best <= target:
                reached[i] = trial.end_time - began
    return reached


def time_to_target(method: str, workers: int, seed: int, budget_s: float) -> dict:
    import jhpo

    searcher, scheduler = METHODS[method]
    objective = sleeping_branin if scheduler is None else sleeping_branin_curve
    began = time.time()
    result = jhpo.tune(objective, branin_space(), searcher=searcher, metric="loss" if scheduler else None,
                       scheduler=scheduler,
                       scheduler_options={"max_resource": EPOCHS} if scheduler else None,
                       num_trials=1000, max_wallclock_s=budget_s, seed=seed, workers=workers,
                       progress=False)
    best = min((t.value for t in result.trials if t.ok), default=math.inf)
    return {"method": method, "workers": workers, "seed": seed, "trials": len(result.trials),
            "seconds_to_targets": seconds_to_targets(result.trials, began),
            "best_regret": best - BRANIN_OPTIMUM}


def median_or_none(values: list[float | None]) -> float | None:
    """The median, a run that never reached the target counting as infinitely slow."""
    median = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(median) else median


def target_part(seeds: int, budget_s: float) -> list[dict]:
    import jhpo

    # BO's functions compile once per buffer size (a power of two): compile them for the
    # sizes a sequential run reaches before timing anything, so no run pays for the others
    jhpo.tune(branin, branin_space(), searcher="bo", num_trials=70, progress=False)
    # seeds outermost, so that a change in the machine's load falls on every method alike
    return [time_to_target(method, workers, seed, budget_s if method == "bo" else budget_s / 2)
            for seed in range(seeds) for method in METHODS for workers in (1, 4)]


def print_targets(runs: list[dict], budget_s: float) -> None:
    print(f"\nTime to target (median seconds over seeds; budget {budget_s:g} s per BO run, "
          f"{budget_s / 2:g} s per other run; ratio = 4 workers / 1):")
    header = " | ".join(f"regret {t:g}: 1 / 4 workers (ratio)" for t in TARGETS)
    print(f"| method | {header} | trials 1 / 4 |")
    print("|---|" + "---|" * len(TARGETS) + "---|")
    for method in METHODS:
        cells = []
        by_workers = {k: [r for r in runs if r["method"] == method and r["workers"] == k]
                      for k in (1, 4)}
        for i in range(len(TARGETS)):
            one, four = (median_or_none([r["seconds_to_targets"][i] for r in by_workers[k]])
                         for k in (1, 4))
            text = " / ".join("-" if m is None else f"{m:.1f}" for m in (one, four))
            ratio = f" ({four / one:.2f})" if one and four else ""
            cells.append(text + ratio)
        trials = " / ".join(f"{statistics.median(r['trials'] for r in by_workers[k]):.0f}"
                            for k in (1, 4))
        print(f"| {method} | " + " | ".join(cells) + f" | {trials} |")


def main():
    args = parse_args()
    pin_cpu(args.cpu)
    seeds = args.seeds or (2 if args.quick else 5)
    budget_s = args.budget_s or (60.0 if args.quick else 120.0)
    ray = not args.no_ray and modules_available("ray")
    payload = {"versions": versions(extras=("ray",) if ray else ()), "cpu_count": os.cpu_count(),
               "quick": args.quick}
    if "throughput" in args.parts:
        payload["throughput"] = throughput_part(args.quick, ray)
        print_throughput(payload["throughput"])
    if "target" in args.parts:
        payload["time_to_target"] = target_part(seeds, budget_s)
        print_targets(payload["time_to_target"], budget_s)
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
