"""Whether this host can run the sandbox's real nodes, and the addresses inside the sandbox's network namespace.

A real node needs Linux, root (mount and network namespaces, ``mknod``, cgroups), the util-linux and iproute2
commands, and three OS packages: ``runc``, ``containernetworking-plugins`` (the CNI plugins in ``/usr/lib/cni``)
and ``busybox-static`` (the test image). :func:`why_not_real` says, in one line, what is missing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback")
COMMANDS = {"unshare": "util-linux", "mount": "mount", "ip": "iproute2"}
BUSYBOX = Path("/bin/busybox")
OS_PACKAGES = ("runc", "containernetworking-plugins", "busybox-static")

NODE_IP_PREFIX = "10.77.0."
POD_SUBNET_PREFIX = "10.88."


def node_ip(index: int) -> str:
    """The node's InternalIP: a /32 on the sandbox namespace's ``lo`` (a node IP cannot be a loopback address)."""
    return f"{NODE_IP_PREFIX}{index + 1}"


def pod_subnet(index: int) -> str:
    return f"{POD_SUBNET_PREFIX}{index}.0/24"


def runc() -> Path | None:
    found = shutil.which("runc") or ("/usr/sbin/runc" if os.access("/usr/sbin/runc", os.X_OK) else None)
    return Path(found) if found else None


def missing_packages() -> list[str]:
    """The OS packages (Debian names) a real node needs and this host lacks."""
    missing = []
    if runc() is None:
        missing.append("runc")
    if not all((CNI_BIN_DIR / p).is_file() for p in CNI_PLUGINS):
        missing.append("containernetworking-plugins")
    if not BUSYBOX.is_file():
        missing.append("busybox-static")
    for command, package in COMMANDS.items():
        if shutil.which(command) is None:
            missing.append(package)
    return missing


def why_not_real() -> str | None:
    """None when real nodes can run here, else the one-line reason."""
    if not sys.platform.startswith("linux"):
        return f"real nodes need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "real nodes need root (mount and network namespaces, device nodes, cgroups)"
    if not Path("/proc/self/ns/net").exists() or not Path("/proc/self/ns/mnt").exists():
        return "real nodes need network and mount namespaces, which this kernel does not offer"
    if not Path("/sys/fs/cgroup").is_dir():
        return "real nodes need the cgroup file system at /sys/fs/cgroup"
    missing = missing_packages()
    if missing:
        return f"real nodes need the OS packages {', '.join(missing)} (apt-get install {' '.join(missing)})"
    return None
