"""Finding and ending the processes of a sandbox's namespaces, and checking that nothing of a sandbox is left.

A process belongs to a namespace when ``/proc/<pid>/ns/<kind>`` has the namespace's inode. The node agent ends
every other process of its node's mount namespace (containerd's shims outlive containerd); the supervisor ends
every other process of the sandbox's network namespace; ``down`` ends whatever a killed supervisor left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from sandbox.realnode import cgroups


def namespace_inode(pid: int, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def namespace_members(kind: str, inode: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and namespace_inode(int(entry), kind) == inode:
            members.append(int(entry))
    return members


def kill_members(kind: str, inode: int, spare: int | None = None, timeout: float = 5.0) -> int:
    """SIGKILL every process of the namespace (except ``spare``) until none is left; returns how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = [pid for pid in namespace_members(kind, inode) if pid != spare]
        if not members:
            break
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        killed.update(members)
        time.sleep(0.05)
    return len(killed)


def kill_namespace_peers(kind: str) -> int:
    """SIGKILL every other process of this process's ``kind`` namespace ("mnt" or "net")."""
    inode = namespace_inode(os.getpid(), kind)
    assert inode is not None
    return kill_members(kind, inode, spare=os.getpid())


def sweep(netns: int, group: str) -> list[str]:
    """After a sandbox's supervisor is gone: kill what is left in its network namespace and cgroups, remove
    the cgroups; returns what could not be cleaned (empty when nothing is left)."""
    problems = []
    if netns and netns != namespace_inode(os.getpid(), "net"):
        kill_members("net", netns)
        left = namespace_members("net", netns)
        if left:
            problems.append(f"processes in the sandbox's network namespace: {left}")
    if group:
        cgroups.kill_all(group)
        problems += [f"cgroup {p}" for p in cgroups.remove(group)]
    return problems


def mounts_under(path: Path) -> list[str]:
    """Mount points of this mount namespace at or below ``path`` (none should be left on the host)."""
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found
