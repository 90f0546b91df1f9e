"""The helm CLI for the chart's tests: pinned in versions.py, built from the k8sbuild/helm wrapper module by
import path (Go ``tool`` directive), its version and Kubernetes version stamped, cached per helm version."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import binaries, gobuild, gomod
from sandbox.binaries import HELM_SPEC, locate
from sandbox.versions import HELM_VERSION

GO_MOD = gobuild.MODULES_DIR / "helm" / "go.mod"


def fake_helm(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "helm"
    line = f'version.BuildInfo{{Version:"{version}", GitCommit:"", GitTreeState:"clean", GoVersion:"go1.26.8"}}'
    path.write_text(f"#!/bin/sh\n[ \"$1\" = version ] && echo '{line}'\n")
    path.chmod(0o755)
    return path


def test_helm_reports_its_version_through_helm_version() -> None:
    assert HELM_SPEC.version == HELM_VERSION and HELM_SPEC.version_flag == "version"
    assert HELM_SPEC.version_matches(f'version.BuildInfo{{Version:"{HELM_VERSION}", GitCommit:""}}')
    assert not HELM_SPEC.version_matches('version.BuildInfo{Version:"v3.22", GitCommit:""}')  # unstamped build
    assert not HELM_SPEC.version_matches(f'version.BuildInfo{{Version:"{HELM_VERSION}-rc.1"}}')


def test_helm_is_cached_under_its_own_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRA_DRIVER_CACHE", str(tmp_path))
    assert HELM_SPEC.cache_dir() == tmp_path / f"helm-{HELM_VERSION}"


def test_a_cached_helm_at_another_version_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRA_DRIVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("DRA_SANDBOX_BIN_DIR", raising=False)
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    fake_helm(HELM_SPEC.cache_dir(), "v3.21.4")
    said: list[str] = []
    assert locate(HELM_SPEC, said.append) is None
    assert any("v3.21.4" in line and HELM_VERSION in line for line in said)
    right = fake_helm(tmp_path / "bin", HELM_VERSION)
    monkeypatch.setenv("DRA_SANDBOX_BIN_DIR", str(right.parent))
    assert binaries.locate(HELM_SPEC, said.append) == right.resolve()


def test_build_stamps_helms_version_and_the_kubernetes_version_of_its_client_go() -> None:
    major, minor = gobuild.helm_kube_version()
    assert (major, minor) == ("1", gomod_client_go_minor())
    flags = gobuild.ldflags("helm")
    assert f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}" in flags
    for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        assert f"-X {package}.k8sVersionMajor=1" in flags and f"-X {package}.k8sVersionMinor={minor}" in flags
    assert int(minor) >= 34, "helm's built-in Kubernetes version must satisfy the chart's kubeVersion"


def gomod_client_go_minor() -> str:
    line = next(x for x in GO_MOD.read_text().splitlines() if x.strip().startswith("k8s.io/client-go "))
    return line.split()[1].split(".")[1]


def test_helm_is_a_go_tool_of_its_wrapper_module_at_the_pinned_version() -> None:
    text = GO_MOD.read_text()
    assert "\ntool helm.sh/helm/v3/cmd/helm\n" in text
    assert f"\thelm.sh/helm/v3 {HELM_VERSION} // indirect\n" in text
    assert HELM_SPEC.package == "helm.sh/helm/v3/cmd/helm"
    assert (gobuild.MODULES_DIR / "helm" / "go.sum").read_text().count(f"helm.sh/helm/v3 {HELM_VERSION}") == 2


def test_repinning_moves_helm_only() -> None:
    text = GO_MOD.read_text()
    assert gomod.pin_helm(text) == text
    moved = gomod.pin_helm(text, "v3.23.0")
    assert "\thelm.sh/helm/v3 v3.23.0 // indirect\n" in moved
    assert moved.replace("v3.23.0", HELM_VERSION) == text


def test_build_command_builds_helm_by_import_path(tmp_path: Path) -> None:
    command = gobuild.build_command("go", "helm", [HELM_SPEC], tmp_path)
    assert command[-1] == "helm.sh/helm/v3/cmd/helm" and command[command.index("-o") + 1] == f"{tmp_path}/"


def test_a_helm_wrapper_without_client_go_says_to_tidy(tmp_path: Path) -> None:
    bare = tmp_path / "go.mod"
    bare.write_text("module x\n")
    with pytest.raises(gobuild.BuildFailed, match="go mod tidy"):
        gobuild.helm_kube_version(bare)
