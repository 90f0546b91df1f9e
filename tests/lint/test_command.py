"""``dra-gpu lint``: files, directories and stdin in; table or JSON out; exit 0 clean, 1 findings, 2 errors."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from cli import lint_cmd

ROOT = Path(__file__).resolve().parents[2]
GOOD = """apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: good}
spec:
  devices:
    requests:
    - name: gpu
      exactly: {deviceClassName: gpu.dra-driver.dev}
"""
BAD = GOOD.replace("deviceClassName", "deviceClass")


def dra_gpu(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dra-gpu")
    lint_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_clean_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dra_gpu("lint", write(tmp_path, "good.yaml", GOOD)) == 0
    assert capsys.readouterr().out == "no findings in 1 linted document(s) of 1\n"


def test_findings_exit_1_and_the_table_points_at_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "bad.yaml", BAD)
    assert dra_gpu("lint", path) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["LOCATION", "OBJECT", "CHECK", "FIELD", "MESSAGE"]
    assert f"{path}:8  ResourceClaim/good  schema" in out and out.endswith(
        "2 finding(s) in 1 linted document(s) of 1\n"
    )


def test_json_output_lists_every_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dra_gpu("lint", "-o", "json", write(tmp_path, "bad.yaml", BAD)) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 1 and [f["field"] for f in report["findings"]] == [
        "spec.devices.requests[0].exactly.deviceClass",
        "spec.devices.requests[0].exactly.deviceClassName",
    ]


def test_unreadable_files_exit_2_with_one_error_line_each_and_no_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = dra_gpu(
        "lint", write(tmp_path, "bad.yaml", BAD), str(tmp_path / "missing.yaml"), write(tmp_path, "x.yaml", "a: [\n")
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    missing, broken = captured.err.splitlines()
    assert missing == f"dra-gpu lint: {tmp_path / 'missing.yaml'}: cannot read: No such file or directory"
    assert broken.startswith(f"dra-gpu lint: {tmp_path / 'x.yaml'}: not valid YAML or JSON")


def test_a_self_referencing_alias_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dra_gpu("lint", write(tmp_path, "loop.yaml", "a: &a [*a]\n")) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    assert dra_gpu("lint", str(path)) == 2
    assert (
        capsys.readouterr().err
        == f"dra-gpu lint: {path}: cannot read: not UTF-8 text (invalid continuation byte at byte 9)\n"
    )


def test_a_directory_is_searched_for_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a/good.yaml", GOOD)
    write(
        tmp_path,
        "a/b/bad.json",
        json.dumps({"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {}, "spec": {}}),
    )
    write(tmp_path, "a/notes.txt", "not a manifest")
    assert dra_gpu("lint", "-o", "json", str(tmp_path / "a")) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 2
    assert [(Path(f["file"]).name, f["field"]) for f in report["findings"]] == [("bad.json", "metadata.name")]


def test_stdin_is_read_for_dash(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(BAD))
    assert dra_gpu("lint", "-") == 1
    assert "<stdin>:8" in capsys.readouterr().out


def test_mode_without_profile_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        dra_gpu("lint", "--mode", "mig", write(tmp_path, "good.yaml", GOOD))
    assert exc.value.code == 2


def test_profile_and_mode_check_feasibility(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "mig.yaml", GOOD.replace("gpu.dra-driver.dev}", "mig-7g-80gb.dra-driver.dev}"))
    assert dra_gpu("lint", "--profile", "dgx-h100", "--mode", "mig", path) == 0
    assert dra_gpu("lint", "--profile", "dgx-a100", "--mode", "mig", path) == 1
    assert "no device of profile dgx-a100 (mode mig) can ever satisfy this request" in capsys.readouterr().out


def test_unusable_kubeconfig_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = write(tmp_path, "kubeconfig", "apiVersion: v1\nkind: Config\nclusters: []\n")
    assert dra_gpu("lint", "--kubeconfig", kubeconfig, write(tmp_path, "good.yaml", GOOD)) == 2
    assert "cannot read the cluster" in capsys.readouterr().err


def test_shipped_classes_and_examples_lint_clean_on_the_demo_machine() -> None:
    files = [str(ROOT / "deploy" / "device-classes.yaml"), str(ROOT / "deploy" / "examples")]
    assert dra_gpu("lint", "--profile", "dgx-a100", "--mode", "mig", *files) == 0
