"""Kill a tuning run mid-way, as a crash or a pre-empted machine would."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kill_after_records(script: str, args: list[str], trials_file: Path, count: int,
                       timeout_s: float, delay_s: float = 0.0, env: dict | None = None) -> list[str]:
    """Run ``python -c script *args`` from the repository root, SIGKILL it ``delay_s``
    after ``trials_file`` holds ``count`` records (or when it exits, or ``timeout_s``
    passes), and return the records it left."""
    process = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT,
                               env=None if env is None else {**os.environ, **env})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if trials_file.exists() and len(trials_file.read_text().splitlines()) >= count:
            time.sleep(delay_s)
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return trials_file.read_text().splitlines()
