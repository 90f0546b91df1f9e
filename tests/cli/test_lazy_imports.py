"""``dra-gpu`` imports only the sub-command it runs: asking the mode controller (``explain --controller``) starts
without the Kubernetes client, the allocator or the sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sandbox.ports import pick_free_ports

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("kubernetes", "dra_driver.structured", "sandbox", "controller", "grpc", "yaml")
PROGRAM = """
import sys
from cli.main import main
code = main(sys.argv[1:])
print("exit", code, *sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _imported(*argv: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(heavy=HEAVY), *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.stdout.splitlines()[-1].split()[1:]  # the last line: exit code, then the modules


def test_explain_asking_the_controller_imports_none_of_the_heavy_modules() -> None:
    (port,) = pick_free_ports(1)  # nothing answers: the command fails after its imports
    assert _imported("explain", "pod", "x", "--controller", f"http://127.0.0.1:{port}") == ["2"]


def test_another_command_imports_what_it_needs() -> None:
    code, *modules = _imported("classes")
    assert code == "0" and "yaml" in modules and "sandbox" not in modules
