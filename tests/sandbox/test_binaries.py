from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import binaries, gobuild, gomod
from sandbox.binaries import SPECS, find_or_build, locate
from sandbox.errors import BinariesUnavailable
from sandbox.versions import ETCD_VERSION, KUBERNETES_VERSION

ETCD, APISERVER = SPECS[0], SPECS[1]


def fake_binary(directory: Path, name: str, version_line: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No binaries anywhere: empty PATH, empty cache, no override variables."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("DRA_DRIVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DRA_SANDBOX_BIN_DIR", raising=False)
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    return tmp_path


def test_version_check_accepts_only_the_pinned_versions() -> None:
    assert ETCD.version_matches(f"etcd Version: {ETCD_VERSION.lstrip('v')}\nGit SHA: x\n")
    assert not ETCD.version_matches(f"etcd Version: {ETCD_VERSION.lstrip('v')}0\n")
    assert APISERVER.version_matches(f"Kubernetes {KUBERNETES_VERSION}\n")
    assert not APISERVER.version_matches(f"Kubernetes {KUBERNETES_VERSION}-dirty\n")
    assert not APISERVER.version_matches("Kubernetes v1.30.0\n")


def test_binary_at_another_version_is_skipped_for_the_next_source(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = fake_binary(clean_env / "bin", "kube-apiserver", "Kubernetes v1.30.0")
    right = fake_binary(clean_env / "envtest", "kube-apiserver", f"Kubernetes {KUBERNETES_VERSION}")
    monkeypatch.setenv("DRA_SANDBOX_BIN_DIR", str(wrong.parent))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(right.parent))
    said: list[str] = []
    assert locate(APISERVER, said.append) == right.resolve()
    assert any(str(wrong) in line and "v1.30.0" in line for line in said)


def test_bin_dir_wins_over_the_cache(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_binary(binaries.cache_dir(), "kube-apiserver", f"Kubernetes {KUBERNETES_VERSION}")
    preferred = fake_binary(clean_env / "bin", "kube-apiserver", f"Kubernetes {KUBERNETES_VERSION}")
    monkeypatch.setenv("DRA_SANDBOX_BIN_DIR", str(preferred.parent))
    assert locate(APISERVER, lambda _: None) == preferred.resolve()


def test_without_go_the_error_names_the_variables_that_point_at_binaries(clean_env: Path) -> None:
    with pytest.raises(BinariesUnavailable) as caught:
        find_or_build(lambda _: None)
    message = str(caught.value)
    assert "DRA_SANDBOX_BIN_DIR" in message
    assert "KUBEBUILDER_ASSETS" in message
    assert "install Go" in message


def test_build_stamps_the_pinned_version_into_kubernetes_binaries() -> None:
    flags = gobuild.ldflags("kube")
    assert f"k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}" in flags
    assert f"k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}" in flags
    assert "gitVersion" not in gobuild.ldflags("etcd")


def test_wrapper_modules_require_the_pinned_versions() -> None:
    kube = (gobuild.MODULES_DIR / "kube" / "go.mod").read_text()
    etcd = (gobuild.MODULES_DIR / "etcd" / "go.mod").read_text()
    assert f"k8s.io/kubernetes {KUBERNETES_VERSION}\n" in kube
    assert f"go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n" in etcd


def test_repinning_the_wrapper_modules_to_the_current_versions_changes_nothing() -> None:
    kube = (gobuild.MODULES_DIR / "kube" / "go.mod").read_text()
    etcd = (gobuild.MODULES_DIR / "etcd" / "go.mod").read_text()
    assert gomod.pin_kube(kube) == kube
    assert gomod.pin_etcd(etcd) == etcd


def test_repinning_moves_kubernetes_and_every_staging_replacement_together() -> None:
    kube = (gobuild.MODULES_DIR / "kube" / "go.mod").read_text()
    moved = gomod.pin_kube(kube, "v1.38.0")
    assert "\tk8s.io/kubernetes v1.38.0\n" in moved
    assert "\tk8s.io/component-base v0.38.0\n" in moved
    assert "k8s.io/api => k8s.io/api v0.38.0\n" in moved
    assert "=> k8s.io/api v0.37.2" not in moved
    assert "k8s.io/utils v0.0.0-20260626114624-be93311217bd" in moved  # not a staging module: left to go mod tidy
