"""Build the sandbox's binaries from the Go wrapper modules in ``k8sbuild/`` into the cache.

``kube`` and ``etcd`` are wrapper ``main`` packages; ``containerd`` and ``helm`` name upstream's commands as Go
``tool`` dependencies in their go.mod and build them by import path, static (``CGO_ENABLED=0``).

The module is copied to a temporary directory inside the cache (``GOFLAGS=-mod=mod`` may touch go.mod and the
installed package can be read-only), built there with ``go build -v``, and each binary is renamed into place,
so a reader never sees a half-written binary. An exclusive ``flock`` on ``<cache>/.build.lock`` keeps two
processes from building at once; the second one waits and then finds the binaries built.

The version is stamped with ``-ldflags -X`` the way each project's release build does, so ``--version`` (helm:
``helm version``) and the API server's ``/version`` report the pinned version. helm also gets the Kubernetes
version its client-go stands for, as its Makefile stamps it: ``helm template`` without ``--kube-version``
renders for that version (an unstamped helm says v1.20.0, which the chart's ``kubeVersion`` refuses).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sandbox.binaries import BIN_DIR_ENV, ENVTEST_ENV, BinarySpec, Progress, reported_version
from sandbox.errors import BinariesUnavailable, BuildFailed
from sandbox.versions import CONTAINERD_VERSION, HELM_VERSION, KUBERNETES_VERSION

MODULES_DIR = Path(__file__).resolve().parent / "k8sbuild"
REPORT_EVERY_S = 10.0
COLD_BUILD_HINT = (
    "the first build compiles ~2,800 Go packages: about 6 min on 2 cores once the Go modules (~1 GB) are "
    "downloaded, under a minute when the Go build cache is warm"
)
HELM_COLD_BUILD_HINT = (
    "the first build compiles ~1,000 Go packages: 2-4 min on 2 cores (~400 MB of Go modules), seconds when the Go "
    "build cache is warm"
)


def ldflags(module: str) -> str:
    """Linker flags: strip symbols and stamp the pinned version (Kubernetes: into both version packages)."""
    flags = ["-s", "-w"]
    if module == "containerd":
        flags.append(f"-X github.com/containerd/containerd/v2/version.Version={CONTAINERD_VERSION}")
    if module == "helm":
        major, minor = helm_kube_version()
        flags += [
            f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
        ]
        for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
            flags += [f"-X {package}.k8sVersionMajor={major}", f"-X {package}.k8sVersionMinor={minor}"]
    if module == "kube":
        major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
        flags += [
            f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
            f"-X k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}",
        ]
    return " ".join(flags)


def helm_kube_version(gomod: Path | None = None) -> tuple[str, str]:
    """(major, minor) of the Kubernetes that helm's client-go stands for: client-go v0.37.0 -> ("1", "37")."""
    text = (gomod or MODULES_DIR / "helm" / "go.mod").read_text()
    found = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.", text, re.M)
    if found is None:
        raise BuildFailed(
            f"{gomod or MODULES_DIR / 'helm' / 'go.mod'} requires no k8s.io/client-go v0.x: run go mod tidy"
        )
    return "1", found.group(1)


def build_command(go: str, module: str, specs: Sequence[BinarySpec], out_dir: Path) -> list[str]:
    return [
        go,
        "build",
        "-v",
        "-trimpath",
        "-ldflags",
        ldflags(module),
        "-o",
        f"{out_dir}/",
        *(s.package for s in specs),
    ]


def build(missing: Sequence[BinarySpec], dest: Path, progress: Progress) -> dict[str, Path]:
    """Build ``missing`` into ``dest``; returns paths by :class:`Binaries` field name."""
    go = shutil.which("go")
    if go is None:
        names = ", ".join(s.name for s in missing)
        raise BinariesUnavailable(
            f"{names} not found at the pinned versions and Go is not installed to build them: install Go "
            f"(https://go.dev/dl/), or set ${BIN_DIR_ENV} to a directory holding etcd, kube-apiserver, "
            f"kube-scheduler and kube-controller-manager at the pinned versions (${ENVTEST_ENV} can supply etcd "
            "and kube-apiserver)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest / ".build.lock", progress):
        todo = [s for s in missing if not s.version_matches(reported_version(dest / s.name, s.version_flag))]
        if todo:
            _build_into(go, todo, dest, progress)
    for spec in missing:
        output = reported_version(dest / spec.name, spec.version_flag)
        if not spec.version_matches(output):
            raise BuildFailed(
                f"built {dest / spec.name} but it reports {output!r}, not {spec.version}: the wrapper module "
                f"{MODULES_DIR / spec.module} does not match versions.py; update its go.mod"
            )
    return {s.field: dest / s.name for s in missing}


@contextmanager
def _exclusive(lock_path: Path, progress: Progress) -> Iterator[None]:
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another process is building into {lock_path.parent}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_into(go: str, specs: Sequence[BinarySpec], dest: Path, progress: Progress) -> None:
    names = ", ".join(s.name for s in specs)
    hint = HELM_COLD_BUILD_HINT if {s.module for s in specs} == {"helm"} else COLD_BUILD_HINT
    progress(f"building {names} with {go} into {dest}; {hint}. To use existing binaries instead, set ${BIN_DIR_ENV}.")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(dir=dest, prefix=".build-"))
    try:
        out_dir = work / "out"
        for module, group in itertools.groupby(sorted(specs, key=lambda s: s.module), key=lambda s: s.module):
            src = work / "src" / module
            shutil.copytree(MODULES_DIR / module, src)
            log = dest / f"build-{module}.log"
            _run_go(build_command(go, module, list(group), out_dir), src, log, module, progress)
        for spec in specs:
            os.replace(out_dir / spec.name, dest / spec.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(f"built {names} in {time.monotonic() - started:.0f} s")


def _run_go(cmd: list[str], cwd: Path, log_path: Path, label: str, progress: Progress) -> None:
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    if label in ("containerd", "helm"):
        env["CGO_ENABLED"] = "0"  # static, as their releases are; containerd needs no btrfs/devmapper headers
    with open(log_path, "w") as log:
        log.write(f"$ (cd {cwd} && GOFLAGS=-mod=mod {' '.join(cmd)})\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        _report(lines, log, label, progress)
        code = proc.wait()
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise BuildFailed(f"go build failed with exit code {code}; full output in {log_path}:\n{tail}")


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _report(lines: queue.Queue[str | None], log: IO[str], label: str, progress: Progress) -> None:
    """Copy go's output to the log and summarise it through ``progress`` at most every REPORT_EVERY_S."""
    compiled = downloaded = 0
    last = ""
    next_report = time.monotonic() + REPORT_EVERY_S
    while True:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            line = ""
        if line is None:
            return
        if line:
            log.write(line)
            text = line.strip()
            if text.startswith("go: downloading "):
                downloaded += 1
            elif text and " " not in text:
                compiled += 1
                last = text
        if time.monotonic() >= next_report:
            next_report = time.monotonic() + REPORT_EVERY_S
            fetched = f"{downloaded} modules downloaded, " if downloaded else ""
            stage = f"last: {last}" if last else "nothing to recompile: the Go build cache has it; linking"
            progress(f"building {label}: {fetched}{compiled} packages compiled ({stage})")
