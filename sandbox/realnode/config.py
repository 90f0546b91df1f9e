"""Configuration files of one real node: containerd's (v3), the CNI network's and the kubelet's. Pure.

Paths are the ones seen inside the node's mount namespace (see mounts.py): containerd and the kubelet use
their conventional directories (``/var/lib/containerd``, ``/run/containerd``, ``/var/lib/kubelet``), which the
node binds to its directory in the sandbox's work directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.realnode.host import CNI_BIN_DIR, node_ip, pod_subnet

CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CNI_CONF_DIR = "/etc/cni/net.d"
KUBELET_ROOT = "/var/lib/kubelet"
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248


@dataclass(frozen=True)
class NodeConfig:
    name: str
    index: int  # 0-based position in the sandbox: picks the node IP and the pod subnet
    cgroup_root: str  # the kubelet's cgroupRoot, e.g. /dra-sandbox-1a2b/sim-node-0
    pause_image: str
    runc: Path
    ca_file: Path  # the sandbox CA: the kubelet trusts client certificates it signed (the API server's)
    feature_gates: Sequence[str] = ()

    @property
    def ip(self) -> str:
        return node_ip(self.index)

    @property
    def bridge(self) -> str:
        return f"cni{self.index}"


def containerd_toml(node: NodeConfig) -> str:
    """containerd 2.x config (version 3). CDI is on by default in 2.x and reads /etc/cdi and /var/run/cdi.

    ``restrict_oom_score_adj``: runc cannot raise a process's ``oom_score_adj`` without CAP_SYS_RESOURCE, which
    a sandboxed host may lack (every container would fail with "can't get final child's PID from pipe: EOF").
    """
    return f"""version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "{CONTAINERD_SOCKET}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  cdi_spec_dirs = ["/etc/cdi", "/var/run/cdi"]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{node.runc}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{CNI_CONF_DIR}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{node.pause_image}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def cni_conflist(node: NodeConfig) -> str:
    """An isolated bridge per node (no masquerade, no route out of the sandbox) with host-local addresses.

    containerd needs an address on the pod's eth0, so a loopback-only network is not enough."""
    doc = {
        "cniVersion": "1.0.0",
        "name": f"sandbox-{node.name}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_subnet(node.index)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "loopback"},
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def kubelet_config(node: NodeConfig) -> dict[str, object]:
    """KubeletConfiguration for a sandboxed node (cgroupfs on whatever cgroup version the host has).

    Eviction thresholds are loose (a shared developer machine is often nearly full), swap is tolerated, and
    the read-only port is off. The API server authenticates to the kubelet with a certificate of the sandbox
    CA and is authorized by the API server itself (Webhook), as kubeadm sets up nodes.
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": node.ip,
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "resolvConf": "",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(node.ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        "maxPods": 110,
        "featureGates": {gate: True for gate in node.feature_gates},
    }
