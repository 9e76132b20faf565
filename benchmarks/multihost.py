"""Population throughput across processes: 1 process x 4 CPU devices against 2 processes x 2.

The same population of the small digits CNN trains on four CPU devices, held once by
one process and once by two processes joined with ``jax.distributed`` (gloo
collectives, coordinator on localhost), so the ratio two / one is the cost of crossing
processes. Sections, each in member-steps per second, compilation excluded (every
figure is the fastest of a few identical calls after a first one that compiles, over
``--rounds`` launches of each layout taken in turn: on a shared machine other work only
ever adds time):

- advance: the training program alone (``PopulationPrograms.advance``, S steps of P
  members, waited for): the compute, which crosses no process.
- train: ``jhpo.population.train`` of P members for S steps, one program; the
  processes meet only to gather the result.
- asha: ``tune_population`` with ASHA (interval S/9), no run directory: after every
  interval an evaluation, a gather of the metrics to every process, the scheduler's
  decisions and the refilled slots' inputs (one broadcast of process 0's clock and one
  check that the asks agree).
- asha_checkpointed: the same with a run directory: an orbax checkpoint after every
  interval, each process writing its shards.

calls: what crossing processes costs per call, in milliseconds (alone, the same calls
are local): gathering the population's metrics (``fetch`` of a (P,) array), process 0's
clock (``shared_time``), comparing an ask (``check_same``), a barrier, and an orbax
checkpoint of the population's fresh states (``Checkpoints.save``).

Both layouts get the same cores (``--cpus``, default 0,1): one process is pinned to all
of them, two processes to one half each, as two hosts would each have their own (with
a single core both processes share it, and wait on each other's collectives).

    python benchmarks/multihost.py [--quick] [--json PATH] [--cpus 0,1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from common import chapter_space, make_parser, versions, write_json

LAYOUTS = {"one": (1, 4), "two": (2, 2)}  # name: (processes, devices per process)
SECTIONS = ("advance", "train", "asha", "asha_checkpointed")  # in member-steps per second


def parse_args():
    parser = make_parser(__doc__, "fewer members and steps", "write the measurements here")
    parser.add_argument("--cpus", default="0,1", help="the cores of each layout, e.g. 0,1")
    parser.add_argument("--rounds", type=int, default=None,
                        help="launches of each layout, alternating (default 2, 1 with --quick)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one process of a layout (JSON spec)
    return parser.parse_args()


def sizes(quick: bool) -> dict:
    if quick:
        return {"population": 8, "steps": 18, "repeats": 2}
    return {"population": 16, "steps": 54, "repeats": 5}


def process_cores(cpus: str, processes: int, process_id: int) -> set[int]:
    """The cores of one process: an equal share of ``cpus`` (all of them when too few)."""
    cores = [int(cpu) for cpu in cpus.split(",")]
    share = cores[process_id::processes]
    return set(share if len(cores) >= processes else cores)


# ----------------------------------------------------------------------------- one process


def worker(spec: dict) -> None:
    """One process of a layout: join, measure every section, and (process 0) write them."""
    os.sched_setaffinity(0, process_cores(spec["cpus"], spec["processes"], spec["process_id"]))
    os.environ["JAX_NUM_CPU_DEVICES"] = str(spec["devices"])
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    from jhpo import multihost

    if spec["processes"] > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        multihost.initialize(f"localhost:{spec['port']}", spec["processes"], spec["process_id"],
                             timeout_s=120)
    rows = {"advance": measure_advance(spec["sizes"]),
            "train": measure_train(spec["sizes"]),
            "asha": measure_asha(spec["sizes"], None),
            "asha_checkpointed": measure_asha(spec["sizes"], spec["run_dir"]),
            "calls": measure_calls(spec["sizes"], spec["run_dir"])}
    if multihost.is_writer():
        with open(spec["out"], "w") as f:
            json.dump({"devices": jax.device_count(), **rows}, f)


def digits_task():
    from jhpo import tasks

    return tasks.make("digits", "cnn")


def chapter_configs(size: dict) -> list[dict]:
    import jhpo

    return [{**config, "batch_size": 64}
            for config in jhpo.Optimizer(chapter_space(), seed=1).ask(size["population"])]


def fastest_s(call, repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``call`` (after one more that warms it up)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def fresh_population(size: dict):
    """The programs of P digits CNN members training S steps a call, and their inputs."""
    import jax

    from jhpo import population as pop

    task = digits_task()
    programs = pop.PopulationPrograms(task, size["population"], 64, size["steps"])
    hp = programs.put(pop.stack_hparams(task, chapter_configs(size)))
    keys = programs.put(pop.member_seeds(0, size["population"]))
    carry = programs.init(keys, hp)
    jax.block_until_ready(carry)
    return programs, carry, hp, keys


def measure_advance(size: dict) -> dict:
    import jax
    import numpy as np

    programs, carry, hp, keys = fresh_population(size)
    starts = np.zeros(programs.size, np.int32)
    seconds = fastest_s(lambda: jax.block_until_ready(programs.advance(carry, hp, keys, starts)),
                        size["repeats"])
    return {"member_steps_per_s": round(size["population"] * size["steps"] / seconds, 1)}


def measure_calls(size: dict, run_dir: str) -> dict:
    import numpy as np

    from jhpo import multihost
    from jhpo.checkpoint import Checkpoints

    programs, carry, _, _ = fresh_population(size)
    metric = programs.put(np.arange(programs.size, dtype=np.float32))
    rows = np.random.default_rng(0).random((size["population"], 4), dtype=np.float32)
    checkpoints, counts = Checkpoints(f"{run_dir}-checkpoints", fingerprint="benchmark"), [0, 0]

    def save():
        counts[0] += 1
        checkpoints.save(counts[0], {"carry": carry}, {"step": counts[0]})

    def barrier():
        counts[1] += 1  # a barrier's name is used once, the same on every process
        multihost.barrier(f"benchmark-{counts[1]}")

    calls = {"fetch_metric": lambda: programs.fetch(metric),
             "shared_time": multihost.shared_time,
             "check_same": lambda: multihost.check_same("rows", rows),
             "barrier": barrier,
             "checkpoint_save": save}
    repeats = 5 * size["repeats"]
    return {name: round(1e3 * fastest_s(call, repeats), 2) for name, call in calls.items()}


def measure_train(size: dict) -> dict:
    from jhpo import population as pop

    task = digits_task()
    configs = chapter_configs(size)
    seeds = pop.member_seeds(0, len(configs))
    first, *timed = [pop.train_configs(task, configs, seeds, size["steps"], chunk_size=len(configs))
                     for _ in range(1 + size["repeats"])]
    seconds = min(result.train_s for result in timed)
    return {"member_steps_per_s": round(len(configs) * size["steps"] / seconds, 1),
            "compile_s": round(first.compile_s, 2)}


def measure_asha(size: dict, run_dir: str | None) -> dict:
    from jhpo import tune_population

    task = digits_task()

    def run(attempt: int):
        start = time.perf_counter()
        result = tune_population(task, chapter_space(), population_size=size["population"],
                                 num_trials=2 * size["population"], steps=size["steps"], seed=0,
                                 run_dir=None if run_dir is None else f"{run_dir}-{attempt}",
                                 progress=False, scheduler="asha",
                                 scheduler_options={"interval": size["steps"] // 9})
        return time.perf_counter() - start, result

    run(0)
    seconds, result = min((run(attempt) for attempt in range(1, 1 + size["repeats"])), key=lambda r: r[0])
    member_steps = sum(t.resource - (t.start_resource or 0) for t in result.trials)
    return {"member_steps_per_s": round(member_steps / seconds, 1), "trials": len(result.trials)}


# ----------------------------------------------------------------------------- the launches


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def measure_layout(name: str, args, scratch: str, round_index: int) -> dict:
    processes, devices = LAYOUTS[name]
    port, out = free_port(), os.path.join(scratch, f"{name}-{round_index}.json")
    launched = []
    for process_id in range(processes):
        spec = {"processes": processes, "devices": devices, "process_id": process_id, "port": port,
                "cpus": args.cpus, "sizes": sizes(args.quick), "out": out,
                "run_dir": os.path.join(scratch, f"{name}-{round_index}-run")}
        # later launches load the programs the first one compiled
        env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": os.path.join(scratch, "compile-cache")}
        launched.append(subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], env=env))
    for process in launched:
        if process.wait() != 0:
            raise RuntimeError(f"layout {name!r}: a process exited with status {process.returncode}")
    with open(out) as f:
        return json.load(f)


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    rounds = args.rounds or (1 if args.quick else 2)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        launches = [{name: measure_layout(name, args, scratch, index) for name in LAYOUTS}
                    for index in range(rounds)]
    measured = {name: {section: max((launch[name][section] for launch in launches),
                                    key=lambda row: row["member_steps_per_s"])
                       for section in SECTIONS} for name in LAYOUTS}
    calls = {name: {call: min(launch[name]["calls"][call] for launch in launches)
                    for call in launches[0][name]["calls"]} for name in LAYOUTS}
    report = {"sizes": sizes(args.quick), "cpus": args.cpus, "rounds": rounds,
              "load_average": {"before": load_before, "after": os.getloadavg()},
              "versions": versions(), "layouts": {n: f"{p} process(es) x {d} devices"
                                                  for n, (p, d) in LAYOUTS.items()},
              "sections": {}}
    for section in SECTIONS:
        one, two = measured["one"][section], measured["two"][section]
        ratio = two["member_steps_per_s"] / one["member_steps_per_s"]
        report["sections"][section] = {"one": one, "two": two, "two_over_one": round(ratio, 3)}
        print(f"{section:18s} 1x4 {one['member_steps_per_s']:8.1f}  2x2 {two['member_steps_per_s']:8.1f}"
              f"  member-steps/s   2x2 / 1x4 = {ratio:.2f}", flush=True)
    report["calls_ms"] = calls
    for call in calls["one"]:
        print(f"{call:18s} 1x4 {calls['one'][call]:8.2f}  2x2 {calls['two'][call]:8.2f}  ms per call", flush=True)
    write_json(args.json, report)


if __name__ == "__main__":
    main()
