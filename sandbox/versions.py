"""The one place that pins the versions of the sandbox's binaries (control plane, real node, helm).

The Go wrapper modules in ``k8sbuild/`` require exactly these versions; change both together.
"""

from __future__ import annotations

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
CONTAINERD_VERSION = "v2.4.2"  # the real node's container runtime (k8sbuild/containerd)
HELM_VERSION = "v3.22.0"  # the helm CLI for the chart's tests (k8sbuild/helm)
