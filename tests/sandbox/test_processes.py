from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from sandbox.instance import start_ticks
from sandbox.processes import ProcessSpec, spawn

PARENT = """
import sys, time
from pathlib import Path
from sandbox.processes import ProcessSpec, spawn
child = spawn(ProcessSpec("sleeper", ("sleep", "300"), Path(sys.argv[1])))
print(child.pid, flush=True)
time.sleep(300)
"""


def wait_until(condition: object, timeout: float) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "sleeper.log")], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert start_ticks(child_pid) is not None
    parent.kill()
    parent.wait()
    parent.stdout.close()
    assert wait_until(lambda: start_ticks(child_pid) is None, 5.0), "child outlived its SIGKILLed parent"


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    child = spawn(ProcessSpec("stubborn", (sys.executable, "-c", script), log))
    assert wait_until(lambda: "armed" in log.read_text().splitlines(), 10.0)
    began = time.monotonic()
    assert child.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - began < 5.0
    assert not child.alive()


def test_child_runs_in_its_own_session_with_output_in_its_log(tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    child = spawn(
        ProcessSpec("echo", (sys.executable, "-c", "import os; print('sid', os.getsid(0) == os.getpid())"), log)
    )
    assert child.popen.wait(10) == 0
    assert "sid True" in log.read_text()
