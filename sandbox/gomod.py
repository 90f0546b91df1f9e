"""Re-pin the Go wrapper modules in ``k8sbuild/`` to the versions in versions.py.

    python -m sandbox.binaries --write-gomod

rewrites the pinned requirements (``k8s.io/kubernetes``, ``k8s.io/component-base``, every staging-module
``replace`` target, ``go.etcd.io/etcd/server/v3``, ``github.com/containerd/containerd/v2``, ``helm.sh/helm/v3``)
and then runs ``go mod tidy`` in each module, which needs network access to the
Go module proxy. Review and commit the resulting go.mod/go.sum changes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from sandbox.binaries import Progress
from sandbox.errors import BinariesUnavailable, BuildFailed
from sandbox.gobuild import MODULES_DIR
from sandbox.versions import CONTAINERD_VERSION, ETCD_VERSION, HELM_VERSION, KUBERNETES_VERSION


def staging_version(kubernetes_version: str) -> str:
    """v1.37.2 -> v0.37.2: the tag of the k8s.io staging modules released with that Kubernetes."""
    return "v0." + kubernetes_version.lstrip("v").split(".", 1)[1]


def pin_kube(text: str, version: str = KUBERNETES_VERSION) -> str:
    staging = staging_version(version)
    text = re.sub(r"^(\s*k8s\.io/kubernetes) v\S+", rf"\g<1> {version}", text, flags=re.M)
    text = re.sub(r"^(\s*k8s\.io/component-base) v\S+", rf"\g<1> {staging}", text, flags=re.M)
    return re.sub(r"(=> k8s\.io/[a-z0-9-]+) v\S+", rf"\g<1> {staging}", text)


def pin_etcd(text: str, version: str = ETCD_VERSION) -> str:
    return re.sub(r"(go\.etcd\.io/etcd/server/v3) v\S+", rf"\g<1> {version}", text)


def pin_containerd(text: str, version: str = CONTAINERD_VERSION) -> str:
    return re.sub(r"^(\s*github\.com/containerd/containerd/v2) v\S+", rf"\g<1> {version}", text, flags=re.M)


def pin_helm(text: str, version: str = HELM_VERSION) -> str:
    """helm is a ``tool`` of its wrapper module: only its requirement moves (v3 only: v4 is another module)."""
    return re.sub(r"^(\s*helm\.sh/helm/v3) v\S+", rf"\g<1> {version}", text, flags=re.M)


def write_gomods(progress: Progress) -> None:
    go = shutil.which("go")
    if go is None:
        raise BinariesUnavailable("re-pinning the wrapper modules needs Go: install it from https://go.dev/dl/")
    for module, pin in (("kube", pin_kube), ("etcd", pin_etcd), ("containerd", pin_containerd), ("helm", pin_helm)):
        path = MODULES_DIR / module / "go.mod"
        old = path.read_text()
        new = pin(old)
        if new != old:
            path.write_text(new)
            progress(f"re-pinned {path}")
        progress(f"go mod tidy in {path.parent} (downloads modules)")
        done = subprocess.run(
            [go, "mod", "tidy"],
            cwd=path.parent,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
            text=True,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise BuildFailed(f"go mod tidy failed in {path.parent}:\n{done.stderr[-2000:]}")
