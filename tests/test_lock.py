import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from jhpo import lock as lock_module
from jhpo.lock import LOCK_FILE, RunDirectoryLocked, RunLock
from tests.killing import ROOT

pytestmark = pytest.mark.skipif(not lock_module.LOCKING_SUPPORTED, reason="no fcntl here")

HOLDER = textwrap.dedent("""
    import sys
    import time
    from jhpo.lock import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock on ``tmp_path / "run"``; SIGKILLed at the end."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready and process.stdout.readline() == "locked\n"
        yield process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_a_second_process_is_refused_then_takes_the_lock_once_the_holder_is_killed(tmp_path, holder):
    run_dir = tmp_path / "run"
    with pytest.raises(RunDirectoryLocked) as refused:
        RunLock(run_dir).acquire()
    message = str(refused.value)
    assert f"process {holder.pid} on host {socket.gethostname()!r}" in message
    assert str(run_dir) in message

    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # the dead holder's pid is still in the file; only the OS lock counts, and it is gone
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == holder.pid
    with RunLock(run_dir) as taken:
        assert taken.held
        assert json.loads((run_dir / LOCK_FILE).read_text()) == {
            "pid": os.getpid(), "host": socket.gethostname()}


def test_another_lock_object_in_the_same_process_is_refused(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunDirectoryLocked, match=f"process {os.getpid()} on host"):
        RunLock(tmp_path).acquire()
    first.release()
    second = RunLock(tmp_path).acquire()
    assert second.held and not first.held
    second.release()


def test_release_then_acquire_again(tmp_path):
    run_lock = RunLock(tmp_path / "missing" / "run")  # created on acquire
    for _ in range(3):
        run_lock.acquire()
        assert run_lock.held and (tmp_path / "missing" / "run" / LOCK_FILE).exists()
        run_lock.release()
        assert not run_lock.held
    run_lock.release()  # releasing a lock not held does nothing


def test_a_context_manager_releases_on_error(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with RunLock(tmp_path):
            1 / 0
    with RunLock(tmp_path) as again:
        assert again.held


def test_what_the_lock_file_says_never_blocks(tmp_path):
    with RunLock(tmp_path):
        pass
    # a leftover holder text (another host's, a reused pid) is only a description
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": "elsewhere"}))
    with RunLock(tmp_path) as taken:
        assert taken.held


def test_a_holder_that_has_not_written_yet_is_still_refused(tmp_path):
    with RunLock(tmp_path):
        (tmp_path / LOCK_FILE).write_text("")  # as between the holder's lock and its write
        with pytest.raises(RunDirectoryLocked, match="has not written its pid"):
            RunLock(tmp_path).acquire()


def test_acquiring_twice_through_one_object_is_an_error(tmp_path):
    with RunLock(tmp_path) as run_lock:
        with pytest.raises(RuntimeError, match="already holds"):
            run_lock.acquire()


def test_without_fcntl_the_lock_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "LOCKING_SUPPORTED", False)
    with RunLock(tmp_path / "run"), RunLock(tmp_path / "run"):
        assert not (tmp_path / "run").exists()
