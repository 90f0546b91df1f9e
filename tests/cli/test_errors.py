"""``dra-gpu`` and user mistakes: one line on stderr saying what is wrong and what would be valid, exit 2, no
traceback; a closed stdout ends quietly; a bug keeps its traceback.

In-process tests call ``cli.main.main``; the ones that depend on the process (the kubeconfig the Kubernetes client
looks for at import, a pipe closed under it) run ``python -m cli.main`` like the installed ``dra-gpu``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main as cli_main
from cli.main import main
from nvml_sim.control import SimulatedMachine
from sandbox.ports import pick_free_ports

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *argv: str, env: dict[str, str] | None = None, stdout: int | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *argv],
        cwd=ROOT,
        env=environ,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def one_line(err: str) -> str:
    """The single line ``err`` holds (failing the test if it holds more, or a traceback)."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def a100(tmp_path: Path) -> Path:
    path = tmp_path / "machine.json"
    SimulatedMachine.create(path, "dgx-a100")
    return path


# --- explain ---------------------------------------------------------------------------------------------------


def test_explain_without_a_kubeconfig_says_how_to_give_one(tmp_path: Path) -> None:
    done = run_cli("explain", "pod", "x", env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)})
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith("dra-gpu explain: cannot load a kubeconfig:")
    assert "pass --kubeconfig FILE or set KUBECONFIG" in line


def test_explain_with_a_kubeconfig_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [\n")
    done = run_cli("explain", "claim", "x", "--kubeconfig", str(kubeconfig))
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("dra-gpu explain: not valid YAML:")


def test_explain_with_a_controller_that_does_not_answer_says_how_to_reach_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (port,) = pick_free_ports(1)  # nothing listens there
    assert main(["explain", "pod", "x", "--controller", f"http://127.0.0.1:{port}"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"dra-gpu explain: --controller http://127.0.0.1:{port}: cannot reach it (")
    assert "kubectl port-forward -n NAMESPACE deployment/RELEASE-controller 8081" in line


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--controller", "127.0.0.1:8081"], "--controller: '127.0.0.1:8081' is not an http(s) URL such as"),
        (["--controller", "http://h:1", "-f", "x.yaml"], "--controller cannot be combined with -f: "),
        (["--controller", "http://h:1", "--policy", "p.yaml"], "--controller cannot be combined with --policy: "),
    ],
)
def test_explain_with_a_controller_refuses_what_it_cannot_honour(
    capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    assert main(["explain", "pod", "x", *extra]) == 2
    assert expected in one_line(capsys.readouterr().err)


# --- lint --------------------------------------------------------------------------------------------------------


def test_lint_of_an_alias_that_contains_itself_is_an_input_error_not_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [*a]\n")
    assert main(["lint", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert one_line(captured.err).startswith(f"dra-gpu lint: {path}")


def test_lint_of_a_missing_file_prints_only_the_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    assert main(["lint", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert one_line(captured.err) == f"dra-gpu lint: {missing}: cannot read: No such file or directory"


# --- sim ---------------------------------------------------------------------------------------------------------


def test_sim_fault_on_a_gpu_the_machine_lacks_names_the_valid_ones(
    a100: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "fault", str(a100), "--gpu", "9", "lost"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line == "dra-gpu sim fault: no GPU 9 on this dgx-a100 machine; valid GPUs are 0..7"
    assert all(gpu["fault"] is None for gpu in SimulatedMachine(a100).state()["gpus"])


def test_sim_reset_of_a_negative_gpu_is_refused(a100: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "reset", str(a100), "--gpu", "-1"]) == 2
    assert "valid GPUs are 0..7" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("content", ["not json at all", "[1, 2]", '{"gpus": 3}'])
def test_sim_show_of_a_file_that_is_not_a_machine_is_refused(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.json"
    path.write_text(content)
    assert main(["sim", "show", str(path)]) == 2
    assert f"{path} is not a simulated machine state file" in one_line(capsys.readouterr().err)


def test_sim_show_of_a_directory_says_there_is_no_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "show", str(tmp_path)]) == 2
    assert "no simulated machine at" in one_line(capsys.readouterr().err)


def test_argument_errors_are_one_line_that_points_at_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sim", "fault", "m.json", "--gpu", "x", "lost"])
    assert exc.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert "argument --gpu: invalid int value: 'x'" in line and line.endswith("(see dra-gpu sim fault --help)")


# --- slices, sandbox ---------------------------------------------------------------------------------------------


def test_a_missing_file_named_on_the_command_line_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "partitioning.yaml"
    assert main(["slices", "--simulate", "single-a100", "--config", str(missing)]) == 2
    assert one_line(capsys.readouterr().err) == f"dra-gpu slices: {missing}: No such file or directory"


def test_a_label_without_a_value_says_what_is_expected(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slices", "--simulate", "single-a100", "--label", "pool"]) == 2
    assert "--label: expected KEY=VALUE, got 'pool'" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--mode", "bogus"], "--mode"),
        (["--nodes", "-1"], "--nodes must be 0 or more, not -1"),
    ],
)
def test_sandbox_up_with_invalid_arguments_starts_nothing(
    tmp_path: Path, argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "up", "--workdir", str(tmp_path / "sb"), *argv]) == 2
    captured = capsys.readouterr()
    assert expected in one_line(captured.err)
    assert not (tmp_path / "sb").exists()


# --- the pipe, and bugs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["sandbox", "status", "--workdir", "{tmp}"], ["sim", "show", "{machine}"]])
def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path, a100: Path, argv: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    try:
        done = run_cli(*(a.format(tmp=tmp_path, machine=a100) for a in argv), stdout=write_end)
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == cli_main.EXIT_BROKEN_PIPE == 141


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: object) -> int:
        raise FileNotFoundError(2, "No such file or directory", "/nonexistent/not-named-by-the-user")

    monkeypatch.setattr("cli.sim_cmd.run", broken)
    with pytest.raises(FileNotFoundError):
        main(["sim", "profiles"])
