"""Kill a tuning run mid-way, as a crash or a pre-empted machine would."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kill_after_records(script: str, args: list[str], trials_file: Path, count: int,
                       timeout_s: float) -> list[str]:
    """Run ``python -c script *args`` from the repository root, SIGKILL it as soon as
    ``trials_file`` holds ``count`` records (or it exits, or ``timeout_s`` passes), and
    return the records it left."""
    process = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if trials_file.exists() and len(trials_file.read_text().splitlines()) >= count:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return trials_file.read_text().splitlines()
