"""Multi-fidelity methods on real training: the small CNN on 8x8 digits.

Every method gets the same compute budget in member-steps, the budget of random search
training ``full_trials`` configurations (64) for the full number of steps, 16 at a time.
The others spend it their way: ASHA and Hyperband (asynchronous, in population mode
with refilled slots) start configurations until the budget is spent and stop most
early; PBT trains a population of ``full_trials`` members, copying and perturbing;
BO + ASHA is ASHA with the GP searcher proposing the configurations. For each run the
best validation error is recorded at the end of each trial against the wall-clock and
the member-steps trained by then, by every slot (the steps of trials still running
included, so a population of random trials reaches its result only when the whole
population has trained). The table gives, per method, the median over seeds of the
best error within the budget and of the fraction of the budget needed to reach random
search's final error of the same seed.

    python benchmarks/multifidelity.py [--quick] [--json PATH] [--seeds N] [--steps N]
        [--interval N] [--full-trials N] [--stopping-slots N] [--methods ...] [--plot PATH]

``--stopping-slots`` (default 4) is the number of slots ASHA, Hyperband and BO + ASHA
train together: with 16 slots in lockstep, a trial that trains in full finishes no
sooner than 16 x its steps of member-steps after it started, while with 4 slots ASHA's
first full trainings come early in the budget, as with few workers.

Why a budget of 64 full trainings: the fewer configurations random search tries, the
more its best is luck, and a small budget leaves ASHA few full trainings' worth of
member-steps in its first third; ASHA's lead grows with the budget. Measured here (5
seeds, 4 stopping slots; the fraction of the budget needed to reach random search's
final error, median over seeds): with 16 full trainings ASHA 0.52 and Hyperband 0.62
(counting only finished trials' steps, which flatters them); with 32, 0.27 and 0.37;
with 64, 0.14 and 0.33 (Hyperband over 10 seeds: 0.25).
"""

from __future__ import annotations

import platform
import time

import numpy as np

from common import chapter_space, make_parser, write_json

METHODS = {
    "random_full": {"searcher": "random", "scheduler": None},
    "hyperband": {"searcher": "random", "scheduler": "hyperband"},
    "asha": {"searcher": "random", "scheduler": "asha"},
    "pbt": {"searcher": "random", "scheduler": "pbt"},
    "bo_asha": {"searcher": "bo", "scheduler": "asha"},
}


def parse_args():
    parser = make_parser(__doc__, "fewer steps, trials and seeds", "write the results here")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5, quick 2)")
    parser.add_argument("--methods", nargs="*", choices=sorted(METHODS), default=list(METHODS))
    parser.add_argument("--interval", type=int, default=None,
                        help="steps between scheduler decisions (default 10, quick 4; PBT uses 3x)")
    parser.add_argument("--steps", type=int, default=None,
                        help="full training, in steps (default 270, quick 108); a multiple of "
                             "the interval")
    parser.add_argument("--plot", metavar="PATH",
                        help="draw the median best error against member-steps here (matplotlib)")
    parser.add_argument("--full-trials", type=int, default=None,
                        help="the budget, in full trainings of random search (default 64, quick 8)")
    parser.add_argument("--stopping-slots", type=int, default=None,
                        help="slots trained together by ASHA, Hyperband and BO + ASHA "
                             "(default 4)")
    return parser.parse_args()


def member_steps_trained_by(trials, moments) -> np.ndarray:
    """Member-steps every slot had trained at each of ``moments``: finished trials in
    full, running ones in proportion to the time they had run (slots train in lockstep,
    so a trial's steps accrue evenly over its lifetime)."""
    steps = np.array([t.resource - (t.start_resource or 0.0) for t in trials])
    starts = np.array([t.start_time for t in trials])
    durations = np.maximum(np.array([t.end_time for t in trials]) - starts, 1e-9)
    done = np.clip((np.asarray(moments)[:, None] - starts) / durations, 0.0, 1.0)
    return done @ steps


def anytime(result):
    """Best error so far against the member-steps trained by then (by every slot, the
    trials still running included) and the wall-clock, at each trial's end."""
    trials = sorted(result.trials, key=lambda t: t.end_time)
    start = min(t.start_time for t in trials)
    ends = [t.end_time for t in trials]
    steps_used = member_steps_trained_by(trials, ends)
    errors = np.array([t.value if t.ok else np.inf for t in trials])
    best = np.minimum.accumulate(errors)
    return steps_used.tolist(), best.tolist(), [end - start for end in ends]


def budget_to_reach(member_steps, best, target) -> float:
    reached = [s for s, b in zip(member_steps, best) if b <= target]
    return reached[0] if reached else float("inf")


def slots_for(method, settings) -> int:
    """Random search trains ``population`` at a time; PBT's population is the
    ``full_trials`` members the budget trains in full; the stopping methods train
    ``stopping_slots``."""
    if method["scheduler"] is None:
        return settings["population"]
    return settings["full_trials"] if method["scheduler"] == "pbt" else settings["stopping_slots"]


def run_method(task, name, seed, settings):
    from jhpo.runs.population import tune_population

    method = METHODS[name]
    budget = settings["full_trials"] * settings["steps"]
    stops_early = method["scheduler"] not in (None, "pbt")
    # early-stopping methods start configurations until the budget is spent
    trials = settings["full_trials"] * (20 if stops_early else 1)
    options = None
    if method["scheduler"] is not None:
        options = {"interval": settings["interval"] * (3 if method["scheduler"] == "pbt" else 1)}
    started = time.perf_counter()
    result = tune_population(
        task, chapter_space(), searcher=method["searcher"],
        population_size=slots_for(method, settings),
        num_trials=trials, steps=settings["steps"], seed=seed, progress=False,
        scheduler=method["scheduler"], scheduler_options=options,
        max_member_steps=budget if stops_early else None)
    member_steps, best, wallclock = anytime(result)
    return {"method": name, "seed": seed, "member_steps": member_steps, "best_error": best,
            "wallclock_s": wallclock, "total_s": time.perf_counter() - started}


def summarise(results, budget):
    """Per method: median final best error, and median fraction of the budget needed to
    reach random search's final best error of the same seed."""
    random_final = {r["seed"]: r["best_error"][-1] for r in results if r["method"] == "random_full"}
    rows = []
    for name in METHODS:
        runs = [r for r in results if r["method"] == name]
        if not runs:
            continue
        within = [[b for s, b in zip(r["member_steps"], r["best_error"]) if s <= budget * 1.001]
                  for r in runs]
        finals = [w[-1] if w else float("inf") for w in within]
        fractions = [budget_to_reach(r["member_steps"], r["best_error"], random_final[r["seed"]]) / budget
                     for r in runs if r["seed"] in random_final]
        rows.append({"method": name, "median_final_error": float(np.median(finals)),
                     "median_budget_fraction_to_random_final": float(np.median(fractions)) if fractions else None,
                     "median_wallclock_s": float(np.median([r["total_s"] for r in runs]))})
    return rows


def draw(results, budget, path):
    """Each method's median best error over seeds against member-steps, with its
    bootstrap band and the methods' average rank."""
    from jhpo import analysis, plot

    curves = {}
    for r in results:
        curves.setdefault(r["method"], {})[r["seed"]] = analysis.Curve(r["member_steps"], r["best_error"])
    summary = analysis.summarise_curves(curves, "min", x="member_steps", metric="val_error")
    figure = plot.anytime_figure(summary, title=f"digits CNN, budget {budget} member-steps")
    print("wrote", ", ".join(str(p) for p in plot.save_figure(figure, path)))


def main():
    args = parse_args()
    import jax

    from jhpo import tasks

    settings = ({"steps": 108, "interval": 4, "full_trials": 8, "population": 8, "stopping_slots": 4,
                 "widths": (8, 16)}
                if args.quick else
                {"steps": 270, "interval": 10, "full_trials": 64, "population": 16, "stopping_slots": 4,
                 "widths": (16, 32, 64)})
    seeds = args.seeds or (2 if args.quick else 5)
    if args.interval is not None:
        settings["interval"] = args.interval
    if args.steps is not None:
        settings["steps"] = args.steps
    if args.full_trials is not None:
        settings["full_trials"] = args.full_trials
    settings["stopping_slots"] = args.stopping_slots or settings["stopping_slots"]
    task = tasks.digits_cnn(cnn_widths=settings["widths"])
    budget = settings["full_trials"] * settings["steps"]
    results = []
    for seed in range(seeds):
        for name in args.methods:
            results.append(run_method(task, name, seed, settings))
            r = results[-1]
            print(f"{name:12s} seed {seed}: best {r['best_error'][-1]:.4f} using {r['member_steps'][-1]:.0f} "
                  f"member-steps in {r['total_s']:.1f} s", flush=True)
    summary = summarise(results, budget)
    print(f"\nbudget: {budget} member-steps ({settings['full_trials']} x {settings['steps']} steps), "
          f"{seeds} seeds")
    print(f"{'method':12s} {'median final error':>19s} {'budget to reach random final':>29s} {'median s':>9s}")
    for row in summary:
        fraction = row["median_budget_fraction_to_random_final"]
        print(f"{row['method']:12s} {row['median_final_error']:19.4f} "
              f"{'never' if fraction in (None, float('inf')) else f'{fraction:.2f}':>29s} "
              f"{row['median_wallclock_s']:9.1f}")
    if args.plot:
        draw(results, budget, args.plot)
    if args.json:
        write_json(args.json, {"results": results, "summary": summary, "settings": settings, "budget": budget,
                               "versions": {"jax": jax.__version__, "python": platform.python_version(),
                                            "devices": [d.device_kind for d in jax.devices()]}},
                   default=float)


if __name__ == "__main__":
    main()
