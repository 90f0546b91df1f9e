"""The one place that pins the versions of the sandbox's binaries (control plane and real node).

The Go wrapper modules in ``k8sbuild/`` require exactly these versions; change both together.
"""

from __future__ import annotations

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
CONTAINERD_VERSION = "v2.4.2"  # the real node's container runtime (k8sbuild/containerd)
