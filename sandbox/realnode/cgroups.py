"""The sandbox's cgroups: one ``dra-sandbox-<id>`` group per sandbox in every hierarchy, a child per node.

The kubelet (cgroupfs driver) puts every pod under its node's group (its ``cgroupRoot``), so killing every
process in the sandbox's groups and removing them, deepest first, leaves nothing of the pods behind. Written for
cgroup v1 (a hierarchy per controller), hybrid and v2 (one hierarchy); only v1 with a hybrid unified mount, as on
this project's CI machines, has been exercised.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
V2_CONTROLLERS = "+cpu +cpuset +memory +pids +io +hugetlb"


def sandbox_group(workdir: Path) -> str:
    """The sandbox's group name, stable for a work directory: ``dra-sandbox-<8 hex>``."""
    return "dra-sandbox-" + hashlib.sha256(str(workdir).encode()).hexdigest()[:8]


def hierarchies(root: Path = CGROUP_FS) -> list[Path]:
    """Every mounted hierarchy: ``root`` itself on pure v2, else its subdirectories (v1 and hybrid)."""
    if (root / "cgroup.controllers").exists():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "cgroup.procs").exists())


def create(group: str, node: str, root: Path = CGROUP_FS) -> str:
    """Create ``/<group>/<node>`` in every hierarchy; returns it as the kubelet's ``cgroupRoot``."""
    for hierarchy in hierarchies(root):
        parent = hierarchy
        for part in (group, node):
            path = parent / part
            path.mkdir(exist_ok=True)
            if (path / "cpuset.cpus").exists() and not (path / "cpuset.cpus").read_text().strip():
                (path / "cpuset.cpus").write_text((parent / "cpuset.cpus").read_text())
                (path / "cpuset.mems").write_text((parent / "cpuset.mems").read_text())
            if (parent / "cgroup.subtree_control").exists():
                with contextlib.suppress(OSError):
                    (parent / "cgroup.subtree_control").write_text(V2_CONTROLLERS)
            parent = path
    return f"/{group}/{node}"


def _walk_deepest_first(top: Path) -> Iterator[Path]:
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        yield Path(dirpath)


def pids(group: str, root: Path = CGROUP_FS) -> set[int]:
    """Every process in the sandbox's groups, in any hierarchy."""
    found: set[int] = set()
    for hierarchy in hierarchies(root):
        top = hierarchy / group
        if not top.is_dir():
            continue
        for path in _walk_deepest_first(top):
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
    return found


def kill_all(group: str, timeout: float = 10.0, root: Path = CGROUP_FS) -> int:
    """SIGKILL every process in the sandbox's groups until none is left; returns how many were signalled."""
    signalled: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        left = pids(group, root)
        if not left or time.monotonic() > deadline:
            return len(signalled)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        signalled |= left
        time.sleep(0.05)


def remove(group: str, root: Path = CGROUP_FS, timeout: float = 10.0) -> list[Path]:
    """Remove the sandbox's groups deepest first (a group empties some time after its last process dies);
    returns the groups that could not be removed."""
    deadline = time.monotonic() + timeout
    while True:
        left: list[Path] = []
        for hierarchy in hierarchies(root):
            top = hierarchy / group
            if top.is_dir():
                for path in _walk_deepest_first(top):
                    try:
                        path.rmdir()
                    except OSError:
                        left.append(path)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def leftovers(group: str, root: Path = CGROUP_FS) -> list[Path]:
    return [h / group for h in hierarchies(root) if (h / group).exists()]
