"""One population over several processes: ``jax.distributed`` on JAX's CPU backend.

Each run launches the processes of tests/runs/multihost_worker.py: 2 processes x 2 CPU
devices (gloo collectives, coordinator on localhost), against 1 process x 4 devices.
The launches share a persistent compilation cache, so later ones skip most compiles.
"""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("multihost_worker.py")
RUN_NAMES = ("random", "asha", "promotion", "pbt")
LAUNCH_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def launch(root: Path, tag: str, num_processes: int, devices: int, runs, timeout_s: float = 60,
           checks: bool = False):
    """Start the processes of one launch; each writes its output to ``root/tag-<id>.log``
    and runs in a working directory of its own, ``root/tag-cwd<id>``; with ``checks``,
    they first write the outcome of the agreement checks to ``root/checks-<id>.json``."""
    port, processes = free_port(), []
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(root / "compile-cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    for process_id in range(num_processes):
        cwd = root / f"{tag}-cwd{process_id}"
        cwd.mkdir(parents=True, exist_ok=True)
        spec = {"devices": devices, "num_processes": num_processes, "process_id": process_id,
                "port": port, "timeout_s": timeout_s,
                "runs": [{"name": name, "run_dir": run_dir(root, tag, name),
                          "result": str(result_path(root, tag, name, process_id))} for name in runs]}
        if checks:
            spec["checks"] = str(root)
        with open(root / f"{tag}-{process_id}.log", "w") as log:
            processes.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], cwd=cwd,
                                              env=env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def run_dir(root: Path, tag: str, name: str) -> str:
    # without a scheduler nothing needs a shared directory: a relative run_dir resolves
    # in each process's own working directory, so a write by process 1 would show there
    return "run" if name == "random" else str(root / f"{tag}-{name}")


def result_path(root: Path, tag: str, name: str, process_id: int) -> Path:
    return root / f"{tag}-{name}-result-{process_id}.json"


def finish(root: Path, tag: str, processes) -> None:
    for process_id, process in enumerate(processes):
        process.wait(timeout=LAUNCH_TIMEOUT_S)
        log = (root / f"{tag}-{process_id}.log").read_text()
        assert process.returncode == 0, f"{tag} process {process_id}:\n{log[-3000:]}"


def read_result(root: Path, tag: str, name: str, process_id: int) -> dict:
    return json.loads(result_path(root, tag, name, process_id).read_text())


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Every run by 1 process x 4 devices ("one") and by 2 processes x 2 devices ("two")."""
    root = tmp_path_factory.mktemp("multihost")
    one = launch(root, "one", 1, 4, RUN_NAMES)
    two = launch(root, "two", 2, 2, RUN_NAMES, checks=True)
    finish(root, "one", one)
    finish(root, "two", two)
    return root


def decisions(result: dict) -> list[tuple]:
    """What the searcher and the scheduler decided: each trial's id, configuration (its
    row, bit for bit), how it ended, how far it trained and whose state it copied."""
    return [(t["trial_id"], t["row"], json.dumps(t["config"], sort_keys=True), t["status"],
             t["resource"], t["parent_id"], t["start_resource"]) for t in result["trials"]]


def assert_same_numbers(result: dict, expected: dict, tolerance: float = 1e-5) -> None:
    for trial, reference in zip(result["trials"], expected["trials"], strict=True):
        assert trial["metrics"].keys() == reference["metrics"].keys()
        for name, value in reference["metrics"].items():
            assert math.isclose(trial["metrics"][name], value, rel_tol=tolerance, abs_tol=tolerance), \
                (trial["trial_id"], name)
        if reference["value"] is not None:
            assert math.isclose(trial["value"], reference["value"], rel_tol=tolerance, abs_tol=tolerance)


@pytest.mark.parametrize("name", RUN_NAMES)
def test_two_processes_decide_and_train_as_one_process(launched, name):
    two, one = read_result(launched, "two", name, 0), read_result(launched, "one", name, 0)
    assert decisions(two) == decisions(one)
    assert_same_numbers(two, one)
    statuses = {t["status"] for t in one["trials"]}
    # the runs exercise the decisions they are meant to compare
    if name in ("asha", "promotion"):
        assert statuses == {"completed", "stopped"}
    if name == "pbt":
        assert any(t["parent_id"] is not None for t in one["trials"])


@pytest.mark.parametrize("name", RUN_NAMES)
def test_only_process_0_writes_and_both_return_its_result(launched, name):
    writer, other = read_result(launched, "two", name, 0), read_result(launched, "two", name, 1)
    assert other == writer  # times and meta included
    if name == "random":
        assert (launched / "two-cwd0" / "run" / "trials.jsonl").exists()
        assert not (launched / "two-cwd1" / "run").exists()
        written, alone = launched / "two-cwd0" / "run", launched / "one-cwd0" / "run"
    else:
        written, alone = Path(run_dir(launched, "two", name)), Path(run_dir(launched, "one", name))
    trial_lines = (written / "trials.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["trial_id"] for line in trial_lines) == \
        sorted(t["trial_id"] for t in writer["trials"])
    # one writer: as many asks and reports as the single process wrote
    for records in ("asks.jsonl", "reports.jsonl"):
        if (alone / records).exists():
            assert len((written / records).read_text().splitlines()) == \
                len((alone / records).read_text().splitlines()), records


def test_process_0_decides_for_all_and_disagreement_is_an_error(launched):
    writer, other = (json.loads((launched / f"checks-{i}.json").read_text()) for i in (0, 1))
    assert writer["gathered"] == other["gathered"] == "returned [[0], [1]]"
    assert writer["computed"] == other["computed"] == 'returned {"by": 0}'
    assert writer["raised"] == "ZeroDivisionError: division by zero"
    assert other["raised"] == "WriterFailed: process 0 failed: ZeroDivisionError: division by zero"
    for outcome in (writer["differing"], other["differing"]):
        assert outcome.startswith("ProcessesDiverged: processes disagree on the process index "
                                  "(processes [1] against process 0)")
    # a run directory locked by another run stops every process of this one
    assert writer["locked"].startswith("RunDirectoryLocked: run directory")
    assert other["locked"].startswith("WriterFailed: process 0 failed: RunDirectoryLocked: run directory")
    assert not (launched / "locked-run" / "meta.json").exists()


def test_killed_processes_resume_to_the_uninterrupted_result(launched):
    trials = Path(run_dir(launched, "killed", "asha")) / "trials.jsonl"
    expected = read_result(launched, "two", "asha", 0)
    processes = launch(launched, "killed", 2, 2, ["asha"])
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while time.monotonic() < deadline and all(p.poll() is None for p in processes):
        if trials.exists() and len(trials.read_text().splitlines()) >= 4:
            break
        time.sleep(0.01)
    for process in processes:
        process.send_signal(signal.SIGKILL)
    for process in processes:
        process.wait()
    recorded = len(trials.read_text().splitlines())
    assert 4 <= recorded < len(expected["trials"]), "the kill came too late to interrupt the run"
    resumed = launch(launched, "killed", 2, 2, ["asha"])
    finish(launched, "killed", resumed)
    result = read_result(launched, "killed", "asha", 0)
    assert decisions(result) == decisions(expected)
    assert_same_numbers(result, expected)
    assert read_result(launched, "killed", "asha", 1) == result


def test_a_process_that_cannot_join_fails_clearly_within_its_timeout(tmp_path):
    """Process 1 with no coordinator to reach raises; process 0 whose peer never comes
    gives up with a message. Neither hangs."""
    timeout_s = 2
    started = time.monotonic()
    port = free_port()  # nothing listens there
    processes = {}
    for process_id in (0, 1):
        spec = {"devices": 1, "num_processes": 2, "process_id": process_id, "port": port,
                "timeout_s": timeout_s, "runs": []}
        # separate coordinators: process 0 listens on its own port, process 1 finds none on ``port``
        if process_id == 0:
            spec["port"] = free_port()
        processes[process_id] = subprocess.run(
            [sys.executable, str(WORKER), json.dumps(spec)], capture_output=True, text=True,
            timeout=120, check=False)
    elapsed = time.monotonic() - started
    unreachable, abandoned = processes[1], processes[0]
    assert unreachable.returncode != 0
    assert "CoordinatorUnreachable" in unreachable.stderr
    assert f"localhost:{port} could not be reached within" in unreachable.stderr
    assert abandoned.returncode == 3  # jhpo.multihost.JOIN_TIMEOUT_EXIT_STATUS
    assert "process 0 of 2 gave up after 2 s waiting for every process to join" in abandoned.stderr
    assert elapsed < 60  # two JAX imports and two timeouts of 2 s, not the default 300 s
