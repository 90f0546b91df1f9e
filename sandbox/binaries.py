"""Locate the sandbox's binaries at the pinned versions, or build them with Go into the cache.

The control plane (:class:`Binaries`) is always needed; a real node (:class:`NodeBinaries`: the kubelet, and
containerd with its runc shim and ctr) only for ``dra-gpu sandbox up --kubelet real``; the helm CLI
(:data:`HELM_SPEC`) only for the chart's tests (``tests/deploy``, ``e2e/sandbox/test_chart.py``).

Lookup order for each binary; the first one whose ``--version`` reports the pinned version wins:

1. ``$DRA_SANDBOX_BIN_DIR``
2. ``$KUBEBUILDER_ASSETS`` (envtest ships etcd and kube-apiserver only)
3. the cache, ``$DRA_DRIVER_CACHE/k8s-<version>/`` (default ``~/.cache/dra-driver/k8s-v1.37.2/``; containerd's
   in ``containerd-<version>/``, helm's in ``helm-<version>/``)
4. ``$PATH``

Whatever is still missing is built from the wrapper modules in ``k8sbuild/`` into the cache (see
:mod:`sandbox.gobuild`).

    python -m sandbox.binaries                 # locate or build, print the paths (CI warms its cache)
    python -m sandbox.binaries --node          # also the real node's kubelet and containerd
    python -m sandbox.binaries --helm          # also the helm CLI (the chart's tests)
    python -m sandbox.binaries --write-gomod   # re-pin the Go wrapper modules to versions.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.versions import CONTAINERD_VERSION, ETCD_VERSION, HELM_VERSION, KUBERNETES_VERSION

Progress = Callable[[str], None]

BIN_DIR_ENV = "DRA_SANDBOX_BIN_DIR"
ENVTEST_ENV = "KUBEBUILDER_ASSETS"
CACHE_ENV = "DRA_DRIVER_CACHE"


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_scheduler: Path
    kube_controller_manager: Path

    def kubernetes(self) -> tuple[Path, ...]:
        """The Kubernetes component binaries (not etcd)."""
        return (self.kube_apiserver, self.kube_scheduler, self.kube_controller_manager)


@dataclass(frozen=True)
class NodeBinaries:
    """What a real node runs besides the OS packages (runc, CNI plugins): see :mod:`sandbox.realnode`."""

    kubelet: Path
    containerd: Path
    containerd_shim_runc_v2: Path
    ctr: Path


@dataclass(frozen=True)
class BinarySpec:
    """One binary: its file name, the Go wrapper module and package that build it, its pinned version."""

    name: str
    field: str
    module: str
    package: str
    version: str
    version_flag: str = "--version"

    def cache_dir(self) -> Path:
        """Where the cache keeps this binary: containerd's and helm's own version, else the Kubernetes version's."""
        if self.module in ("containerd", "helm"):
            return cache_root() / f"{self.module}-{self.version}"
        return cache_dir()

    def version_matches(self, version_output: str) -> bool:
        """True when ``<binary> --version`` output names exactly the pinned version."""
        if self.module == "containerd":  # "containerd github.com/containerd/containerd/v2 v2.4.2", "Version:  v2.4.2"
            return re.search(rf"(^|\s){re.escape(self.version)}(\s|$)", version_output, re.M) is not None
        if self.module == "helm":  # version.BuildInfo{Version:"v3.22.0", GitCommit:"", GitTreeState:"clean", ...}
            return re.search(rf'^version\.BuildInfo\{{Version:"{re.escape(self.version)}"', version_output) is not None
        if self.name == "etcd":
            return (
                re.search(rf"^etcd Version: {re.escape(self.version.lstrip('v'))}$", version_output, re.M) is not None
            )
        return re.search(rf"^Kubernetes {re.escape(self.version)}$", version_output, re.M) is not None


SPECS: tuple[BinarySpec, ...] = (
    BinarySpec("etcd", "etcd", "etcd", "./cmd/etcd", ETCD_VERSION),
    BinarySpec("kube-apiserver", "kube_apiserver", "kube", "./cmd/kube-apiserver", KUBERNETES_VERSION),
    BinarySpec("kube-scheduler", "kube_scheduler", "kube", "./cmd/kube-scheduler", KUBERNETES_VERSION),
    BinarySpec(
        "kube-controller-manager",
        "kube_controller_manager",
        "kube",
        "./cmd/kube-controller-manager",
        KUBERNETES_VERSION,
    ),
)

CONTAINERD_PACKAGE = "github.com/containerd/containerd/v2/cmd"
NODE_SPECS: tuple[BinarySpec, ...] = (
    BinarySpec("kubelet", "kubelet", "kube", "./cmd/kubelet", KUBERNETES_VERSION),
    BinarySpec("containerd", "containerd", "containerd", f"{CONTAINERD_PACKAGE}/containerd", CONTAINERD_VERSION),
    BinarySpec(
        "containerd-shim-runc-v2",
        "containerd_shim_runc_v2",
        "containerd",
        f"{CONTAINERD_PACKAGE}/containerd-shim-runc-v2",
        CONTAINERD_VERSION,
        version_flag="-v",
    ),
    BinarySpec("ctr", "ctr", "containerd", f"{CONTAINERD_PACKAGE}/ctr", CONTAINERD_VERSION),
)

HELM_SPEC = BinarySpec("helm", "helm", "helm", "helm.sh/helm/v3/cmd/helm", HELM_VERSION, version_flag="version")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dra-driver")


def cache_dir() -> Path:
    """Where built binaries live; keyed by the Kubernetes version (etcd is checked by its own version)."""
    return cache_root() / f"k8s-{KUBERNETES_VERSION}"


def reported_version(binary: Path, flag: str = "--version") -> str:
    """``binary --version`` output (stdout and stderr), or the reason it could not be run."""
    try:
        done = subprocess.run(
            [str(binary), flag],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run: {exc}"
    return (done.stdout + done.stderr).strip()


def candidates(spec: BinarySpec) -> Iterator[tuple[str, Path]]:
    """(source, path) pairs in lookup order, for paths that exist."""
    for env in (BIN_DIR_ENV, ENVTEST_ENV):
        value = os.environ.get(env)
        if value:
            yield f"${env}", Path(value) / spec.name
    yield "cache", spec.cache_dir() / spec.name
    found = shutil.which(spec.name)
    if found:
        yield "PATH", Path(found)


def locate(spec: BinarySpec, progress: Progress) -> Path | None:
    """The first candidate at the pinned version; candidates at another version are reported and skipped."""
    for source, path in candidates(spec):
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        output = reported_version(path, spec.version_flag)
        if spec.version_matches(output):
            return path.resolve()
        first_line = output.splitlines()[0] if output else "no output"
        progress(f"ignoring {path} (from {source}): reports {first_line!r}, need {spec.version}")
    return None


def locate_all(progress: Progress, specs: tuple[BinarySpec, ...] = SPECS) -> tuple[dict[str, Path], list[BinarySpec]]:
    """Found paths by field name, and the specs still missing."""
    found: dict[str, Path] = {}
    missing: list[BinarySpec] = []
    for spec in specs:
        path = locate(spec, progress)
        if path is None:
            missing.append(spec)
        else:
            found[spec.field] = path
    return found, missing


def find_or_build(progress: Progress) -> Binaries:
    """Locate every binary at its pinned version, building the missing ones with Go (minutes when cold)."""
    return Binaries(**_find_or_build(SPECS, progress))


def find_or_build_node(progress: Progress) -> NodeBinaries:
    """The real node's kubelet and containerd at their pinned versions, built when missing (about 2 min cold)."""
    return NodeBinaries(**_find_or_build(NODE_SPECS, progress))


def find_or_build_helm(progress: Progress) -> Path:
    """The helm CLI at its pinned version, built when missing (about 3 min with a cold Go build cache)."""
    return _find_or_build((HELM_SPEC,), progress)[HELM_SPEC.field]


def _find_or_build(specs: tuple[BinarySpec, ...], progress: Progress) -> dict[str, Path]:
    found, missing = locate_all(progress, specs)
    if missing:
        from sandbox import gobuild  # only needed on a cache miss

        for dest in sorted({s.cache_dir() for s in missing}):
            found.update(gobuild.build([s for s in missing if s.cache_dir() == dest], dest, progress))
    return found


def main(argv: list[str] | None = None) -> int:
    import argparse

    from sandbox.errors import SandboxError

    parser = argparse.ArgumentParser(prog="python -m sandbox.binaries", description=__doc__.split("\n")[0])
    parser.add_argument("--write-gomod", action="store_true", help="re-pin k8sbuild/*/go.mod to versions.py (network)")
    parser.add_argument("--node", action="store_true", help="also the real node's kubelet and containerd")
    parser.add_argument("--helm", action="store_true", help="also the helm CLI (the chart's tests)")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if args.write_gomod:
            from sandbox.gomod import write_gomods

            write_gomods(say)
            return 0
        specs = SPECS + (NODE_SPECS if args.node else ()) + ((HELM_SPEC,) if args.helm else ())
        paths = _find_or_build(specs, say)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name.replace('_', '-')}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
