"""Population training throughput: members vmapped together against one after another.

throughput: the small CNN on 8x8 digits, P members (configurations from the
chapter's space, batch size 64) trained for a few steps as one vmapped
program, against the same members trained one after another by the P = 1
program; where P exceeds jhpo's default chunk for the backend, also in those
chunks ("vmapped_chunked", what ``train`` does by default). Member-steps per second exclude compilation, which is reported apart;
peak_mb is XLA's estimate of the largest program's memory on one device
(arguments, outputs, temporaries).

end_to_end: 64 configurations drawn from the chapter's space, batch size
included, each trained for the same number of steps, by ``tune_population``
(both batch-size strategies) and by a plain loop as a user would write it:
one jitted step per trial, batches drawn on the host. Compilation counts here.

conv: the same vmapped training with each convolution implementation of
``jhpo.nn``; the fastest is the backend's default (``jhpo.nn.BACKEND_DEFAULT_CONV``).

Timings on a machine whose cores are shared with other work are noisy; the
report records the load average at the start.

    python benchmarks/population_throughput.py [--quick] [--json PATH] [--skip SECTION ...]
"""

from __future__ import annotations

import json
import os
import platform
import time

from common import chapter_space, make_parser, write_json

SECTIONS = ("throughput", "end_to_end", "conv")


def parse_args():
    parser = make_parser(__doc__, "fewer members, steps and configurations", "write the measurements here")
    parser.add_argument("--skip", nargs="*", choices=SECTIONS, default=[], help="sections not to run")
    return parser.parse_args()


def chapter_configs(count, seed=0):
    import jhpo

    return jhpo.Optimizer(chapter_space(), searcher="random", seed=seed).ask(count)


def fresh_task(data, conv_impl=None):
    """A new task object: programs are cached per task, so each measurement compiles its own."""
    from jhpo import tasks

    return tasks.make("digits", "cnn", data=data, conv_impl=conv_impl)


def fastest_run(task, configs, seeds, steps, repeats, **options):
    """The first call (compiles) and the fastest of ``repeats`` further calls.

    The minimum, not the mean: on a shared machine other work only ever adds time.
    """
    from jhpo import population as pop

    first = pop.train_configs(task, configs, seeds, steps, **options)
    fastest = min(
        (pop.train_configs(task, configs, seeds, steps, **options) for _ in range(repeats)), key=lambda r: r.train_s
    )
    return first, fastest


def vmapped_row(task, configs, steps, repeats, chunked=False):
    """All members in one program, or (``chunked``) in jhpo's default chunks."""
    from jhpo import population as pop

    chunk_size = None if chunked else len(configs)
    seeds = pop.member_seeds(0, len(configs))
    first, fastest = fastest_run(task, configs, seeds, steps, repeats, chunk_size=chunk_size)
    return {
        "P": len(configs),
        "mode": "vmapped_chunked" if chunked else "vmapped",
        "member_steps_per_s": round(len(configs) * steps / fastest.train_s, 1),
        "compile_s": round(first.compile_s, 2),
        "peak_mb": round(first.program_bytes / 2**20, 2),
    }


def sequential_row(task, configs, steps, repeats, single):
    """The members one after another with the P = 1 program (``single`` is its vmapped row)."""
    from jhpo import population as pop

    seeds = pop.member_seeds(0, len(configs))
    seconds = sum(
        fastest_run(task, [config], seeds[index : index + 1], steps, repeats)[1].train_s
        for index, config in enumerate(configs)
    )
    return {
        "P": len(configs),
        "mode": "sequential",
        "member_steps_per_s": round(len(configs) * steps / seconds, 1),
        "compile_s": single["compile_s"],
        "peak_mb": single["peak_mb"],
    }


def measure_throughput(data, sizes, steps, repeats):
    import jax

    from jhpo import population as pop

    configs = [{**config, "batch_size": 64} for config in chapter_configs(max(sizes), seed=1)]
    task = fresh_task(data)
    single = vmapped_row(task, configs[:1], steps, repeats)
    chunk = pop.default_chunk_size(jax.device_count())
    rows = []
    for size in sizes:
        rows.append(single if size == 1 else vmapped_row(task, configs[:size], steps, repeats))
        if chunk is not None and size > chunk:
            rows.append(vmapped_row(task, configs[:size], steps, repeats, chunked=True))
        rows.append(sequential_row(task, configs[:size], steps, repeats, single))
    for row in rows:
        print_row(row)
    return rows


def print_row(row):
    print("  " + "  ".join(f"{key}={value}" for key, value in row.items()), flush=True)


def measure_conv(data, size, steps, repeats):
    from jhpo import nn as jnn

    configs = [{**config, "batch_size": 64} for config in chapter_configs(size, seed=2)]
    rows = []
    for impl in jnn.CONV_IMPLS:
        row = {"impl": impl, **vmapped_row(fresh_task(data, impl), configs, steps, repeats)}
        row.pop("mode")
        rows.append(row)
        print_row(row)
    return rows


def population_seconds(data, configs_count, steps, population_size, batch_strategy):
    from jhpo.runs.population import tune_population

    start = time.perf_counter()
    result = tune_population(
        fresh_task(data),
        chapter_space(),
        searcher="random",
        population_size=population_size,
        num_trials=configs_count,
        steps=steps,
        seed=0,
        progress=False,
        batch_strategy=batch_strategy,
    )
    seconds = time.perf_counter() - start
    return seconds, [t.value if t.ok else float("nan") for t in result.trials]


def per_trial_loop_seconds(data, configs, steps):
    """The loop a user writes without jhpo: one jitted step per trial, host batches."""
    import jax
    import numpy as np
    import optax

    from jhpo.tasks.data import normalise
    from jhpo.tasks.models import SmallCNN

    model = SmallCNN(num_classes=data.num_classes)
    train_x = np.asarray(normalise(data, data.train_images))
    train_y = np.asarray(data.train_labels)
    val_x = normalise(data, data.val_images)
    val_y = data.val_labels
    start = time.perf_counter()
    errors = []
    for index, config in enumerate(configs):
        optimizer = optax.chain(
            optax.add_decayed_weights(config["weight_decay"]),
            optax.sgd(config["learning_rate"], momentum=config["momentum"]),
        )
        params = model.init(jax.random.key(index), train_x[:1], train=False)["params"]
        opt_state = optimizer.init(params)

        @jax.jit
        def step(params, opt_state, images, labels):
            def loss_fn(p):
                logits = model.apply({"params": p}, images, train=True)
                return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        @jax.jit
        def validation_error(params):
            logits = model.apply({"params": params}, val_x, train=False)
            return 1.0 - (logits.argmax(-1) == val_y).mean()

        rng = np.random.default_rng(index)
        for _ in range(steps):
            batch = rng.integers(0, len(train_x), config["batch_size"])
            params, opt_state, loss = step(params, opt_state, train_x[batch], train_y[batch])
        error = float(validation_error(params))
        errors.append(error if np.isfinite(float(loss)) else float("nan"))
    return time.perf_counter() - start, errors


def measure_end_to_end(data, configs_count, steps, population_size):
    import numpy as np

    report = {"configs": configs_count, "steps": steps, "population_size": population_size}
    for strategy in ("mask", "bucket"):
        seconds, errors = population_seconds(data, configs_count, steps, population_size, strategy)
        key = "population_s" if strategy == "mask" else "population_bucket_s"
        report[key] = round(seconds, 1)
        report[f"{key[:-2]}_median_error"] = round(float(np.nanmedian(errors)), 4)
        print(f"  tune_population ({strategy}): {seconds:.1f} s", flush=True)
    configs = chapter_configs(configs_count, seed=0)
    seconds, errors = per_trial_loop_seconds(data, configs, steps)
    report["per_trial_loop_s"] = round(seconds, 1)
    report["per_trial_loop_median_error"] = round(float(np.nanmedian(errors)), 4)
    report["speedup"] = round(seconds / report["population_s"], 2)
    print(f"  per-trial loop: {seconds:.1f} s; speedup {report['speedup']}x", flush=True)
    return report


def environment():
    import jax
    import jaxlib

    return {
        "backend": jax.default_backend(),
        "devices": [str(device.device_kind) for device in jax.devices()],
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


def main():
    args = parse_args()
    from jhpo.tasks import load_digits

    report = {"environment": environment(), "quick": args.quick}
    print(json.dumps(report["environment"]), flush=True)
    data = load_digits()
    repeats = 2 if args.quick else 3
    if "throughput" not in args.skip:
        print("throughput", flush=True)
        sizes = (1, 4, 16) if args.quick else (1, 4, 16, 64)
        report["throughput"] = measure_throughput(data, sizes, steps=20 if args.quick else 50, repeats=repeats)
    if "conv" not in args.skip:
        print("conv (vmapped, P = 16)", flush=True)
        report["conv"] = measure_conv(data, 16, steps=5 if args.quick else 20, repeats=repeats)
    if "end_to_end" not in args.skip:
        print("end to end", flush=True)
        report["end_to_end"] = measure_end_to_end(
            data, configs_count=16 if args.quick else 64, steps=20 if args.quick else 200, population_size=16
        )
    write_json(args.json, report, indent=2)
    return report


if __name__ == "__main__":
    main()
