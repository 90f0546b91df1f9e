"""``dra-gpu sim`` injects events, lists them and prints the environment of a machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from nvml_sim.control import SimulatedMachine


@pytest.fixture
def a100(tmp_path: Path) -> Path:
    return SimulatedMachine.create(tmp_path / "node.json", "dgx-a100").state_path


def test_injected_events_are_listed_oldest_first_and_cleared(a100: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "xid", str(a100), "--gpu", "2", "31"]) == 0
    assert main(["sim", "ecc", str(a100), "--gpu", "5"]) == 0
    assert main(["sim", "fault", str(a100), "--gpu", "6", "lost"]) == 0
    capsys.readouterr()
    assert main(["sim", "events", str(a100)]) == 0
    lines = [line.split(maxsplit=1)[1] for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        "gpu 2 XidCriticalError 31",
        "gpu 5 DoubleBitEccError",
        "gpu 5 XidCriticalError 48",
        "gpu 6 XidCriticalError 79",
    ]
    assert main(["sim", "events", str(a100), "--gpu", "5", "--clear"]) == 0
    assert main(["sim", "events", str(a100)]) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()] == ["2", "6"]


def test_an_xid_for_a_gpu_the_machine_lacks_or_that_is_no_xid_is_refused(
    a100: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "xid", str(a100), "--gpu", "8", "79"]) == 2
    assert "no GPU 8 on this dgx-a100 machine" in capsys.readouterr().err
    assert main(["sim", "xid", str(a100), "--gpu", "0", "0"]) == 2
    assert "XID 0 is not an XID" in capsys.readouterr().err


def test_sim_env_prints_shell_exports_and_the_sysfs(a100: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "env", str(a100)]) == 0
    lines = capsys.readouterr().out.splitlines()
    exports = [line.split("=", 1)[0] for line in lines if line.startswith("export ")]
    assert exports == ["export DRA_SIM_NVML_STATE", "export LD_LIBRARY_PATH", "export PYTHONPATH"]
    assert lines[-1].endswith(str(a100.with_name("node.sys")))


def test_sim_env_of_a_file_that_is_not_a_machine_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.json"
    path.write_text("[]")
    assert main(["sim", "env", str(path)]) == 2
    assert "is not a simulated machine state file" in capsys.readouterr().err
