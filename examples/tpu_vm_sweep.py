"""One population over every host of a TPU VM slice, or every node of a multi-node GPU job.

Run the same command on every host, one process per host (the README's "Many hosts"
section has the gcloud and srun commands). ``jhpo.multihost.initialize()`` joins the
processes: on Cloud TPU and under SLURM it finds the coordinator itself; elsewhere give
``--coordinator HOST:PORT --num-processes N --process-id I``. The population is sharded
over every chip of every host, each host feeding its own chips' members; worker 0 prints
the progress and writes the run directory, and every worker ends with the same result.
With a scheduler, ``--run-dir`` must be on a filesystem every host mounts (NFS,
Filestore, a mounted bucket): each host writes its shards of the checkpoints. Running
the same command again on every host resumes from the last checkpoint.

Try it on one machine, as two processes of two CPU devices each:

    python examples/tpu_vm_sweep.py --cpu-devices 2 --coordinator localhost:12355 \\
        --num-processes 2 --process-id 0 &
    python examples/tpu_vm_sweep.py --cpu-devices 2 --coordinator localhost:12355 \\
        --num-processes 2 --process-id 1
"""

from __future__ import annotations

import argparse

import jax

import jhpo
from jhpo import multihost, tasks

CHAPTER_SPACE = {
    "learning_rate": jhpo.loguniform(1e-5, 1e-1),
    "momentum": jhpo.uniform(0.0, 0.99),
    "weight_decay": jhpo.loguniform(1e-9, 1e-2),
    "batch_size": jhpo.randint(8, 128),
}


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tasks.DATASETS, default="digits")
    parser.add_argument("--model", choices=tasks.MODELS, default="cnn")
    parser.add_argument("--population", type=int, default=64,
                        help="members trained together (padded to a multiple of all devices)")
    parser.add_argument("--trials", type=int, default=256, help="configurations to train in all")
    parser.add_argument("--steps", type=int, default=324, help="SGD steps of a full training")
    parser.add_argument("--scheduler", choices=["asha", "hyperband", "median", "pbt", "none"],
                        default="asha")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs/tpu_vm_sweep",
                        help="written by worker 0; on a filesystem every host mounts with a scheduler")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir for CIFAR-10")
    parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (default: detected)")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds to wait for every process to join")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="run on this many CPU devices per process (a try on one machine)")
    return parser.parse_args(argv)


def main(argv=None) -> jhpo.Result:
    args = parse_arguments(argv)
    if args.cpu_devices:
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    multihost.initialize(args.coordinator, args.num_processes, args.process_id, timeout_s=args.timeout)
    if multihost.is_writer():
        print(f"{jax.process_count()} processes, {jax.device_count()} devices "
              f"({jax.devices()[0].device_kind}); run directory {args.run_dir}", flush=True)
    result = jhpo.tune_population(
        tasks.make(args.dataset, args.model, data_dir=args.data_dir),
        CHAPTER_SPACE,
        population_size=args.population,
        num_trials=args.trials,
        steps=args.steps,
        seed=args.seed,
        run_dir=args.run_dir,
        scheduler=None if args.scheduler == "none" else args.scheduler,
    )
    if multihost.is_writer():
        print(result)
    return result


if __name__ == "__main__":
    main()
