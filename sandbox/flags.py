"""Command lines of etcd and the Kubernetes control-plane components: pure functions of the sandbox's inputs.

Everything listens on 127.0.0.1 only. etcd speaks plain HTTP on loopback; the Kubernetes components serve
HTTPS with the sandbox's serving certificate and authenticate clients by certificates from the sandbox CA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.binaries import Binaries
from sandbox.featuregates import FeatureGates
from sandbox.layout import Layout
from sandbox.pki import CONTROLLER_MANAGER, FRONT_PROXY, KUBELET_CLIENT, SCHEDULER, Pki
from sandbox.ports import LOOPBACK, pick_free_ports

ETCD_NAME = "sandbox"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
"""The ``kubernetes`` Service's ClusterIP: the first address of SERVICE_CIDR."""

RESOURCE_GROUP = "resource.k8s.io"
EXTRA_RESOURCE_VERSIONS = ("v1beta1", "v1beta2", "v1alpha3")
"""resource.k8s.io versions switched on besides v1 (v1alpha3 holds alpha extras such as DeviceTaintRule's
alpha fields and ResourcePoolStatusRequest)."""
RUNTIME_CONFIG = ",".join(f"{RESOURCE_GROUP}/{v}=true" for v in EXTRA_RESOURCE_VERSIONS)

REQUIRED_CONTROLLERS = ("resourceclaim-controller", "device-taint-eviction-controller")
"""Controllers the sandbox relies on, named explicitly (both are also part of ``*``)."""


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    scheduler: int
    controller_manager: int

    @classmethod
    def pick(cls, apiserver: int | None = None) -> Ports:
        """Free ports; ``apiserver`` fixes the API server's (real nodes: the port the host forwards)."""
        if apiserver is None:
            return cls(*pick_free_ports(5))
        ports = [p for p in pick_free_ports(5) if p != apiserver][:4]
        return cls(ports[0], ports[1], apiserver, ports[2], ports[3])

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.apiserver}"

    @property
    def etcd_url(self) -> str:
        return f"http://{LOOPBACK}:{self.etcd_client}"

    def to_json(self) -> dict[str, int]:
        return {
            "etcd_client": self.etcd_client,
            "etcd_peer": self.etcd_peer,
            "apiserver": self.apiserver,
            "scheduler": self.scheduler,
            "controller_manager": self.controller_manager,
        }


@dataclass(frozen=True)
class Inputs:
    """Everything the command lines depend on."""

    binaries: Binaries
    layout: Layout
    pki: Pki
    ports: Ports
    gates: FeatureGates


def etcd(i: Inputs) -> tuple[str, ...]:
    peer = f"http://{LOOPBACK}:{i.ports.etcd_peer}"
    return (
        str(i.binaries.etcd),
        f"--name={ETCD_NAME}",
        f"--data-dir={i.layout.etcd_data}",
        f"--listen-client-urls={i.ports.etcd_url}",
        f"--advertise-client-urls={i.ports.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={ETCD_NAME}={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",  # a throw-away cluster: trade durability for speed
        "--log-level=warn",
    )


def apiserver(i: Inputs) -> tuple[str, ...]:
    p = i.pki
    return (
        str(i.binaries.kube_apiserver),
        f"--etcd-servers={i.ports.etcd_url}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        "--endpoint-reconciler-type=none",  # a loopback advertise address is refused by the endpoint reconciler
        f"--secure-port={i.ports.apiserver}",
        f"--tls-cert-file={p.serving_cert}",
        f"--tls-private-key-file={p.serving_key}",
        f"--client-ca-file={p.ca_cert}",
        *_request_header(p),
        f"--service-account-issuer={i.ports.server}",
        f"--service-account-key-file={p.sa_public_key}",
        f"--service-account-signing-key-file={p.sa_private_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--kubelet-client-certificate={p.client_cert(KUBELET_CLIENT)}",
        f"--kubelet-client-key={p.client_key(KUBELET_CLIENT)}",
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
        f"--runtime-config={RUNTIME_CONFIG}",
        *_gates(i.gates),
    )


def scheduler(i: Inputs) -> tuple[str, ...]:
    kubeconfig = i.layout.component_kubeconfig(SCHEDULER.file_stem)
    return (
        str(i.binaries.kube_scheduler),
        *_component_common(i, kubeconfig=str(kubeconfig), port=i.ports.scheduler),
    )


def controller_manager(i: Inputs) -> tuple[str, ...]:
    kubeconfig = i.layout.component_kubeconfig(CONTROLLER_MANAGER.file_stem)
    return (
        str(i.binaries.kube_controller_manager),
        *_component_common(i, kubeconfig=str(kubeconfig), port=i.ports.controller_manager),
        f"--controllers=*,{','.join(REQUIRED_CONTROLLERS)}",
        "--use-service-account-credentials=true",
        f"--root-ca-file={i.pki.ca_cert}",
        f"--service-account-private-key-file={i.pki.sa_private_key}",
        f"--cluster-signing-cert-file={i.pki.ca_cert}",
        f"--cluster-signing-key-file={i.pki.ca_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
    )


def known_controllers(help_text: str) -> frozenset[str]:
    """Controller names listed under ``--controllers`` in ``kube-controller-manager --help``."""
    match = re.search(r"All controllers: ([a-z0-9, -]+)", help_text)
    return frozenset(n.strip() for n in match.group(1).split(",")) if match else frozenset()


def _component_common(i: Inputs, kubeconfig: str, port: int) -> tuple[str, ...]:
    return (
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--tls-cert-file={i.pki.serving_cert}",
        f"--tls-private-key-file={i.pki.serving_key}",
        "--leader-elect=false",
        "--profiling=false",
        *_gates(i.gates),
    )


def _request_header(p: Pki) -> tuple[str, ...]:
    """Front-proxy (request-header) authentication, which the scheduler's and controller manager's delegated
    authentication expect to find configured."""
    return (
        f"--requestheader-client-ca-file={p.ca_cert}",
        f"--requestheader-allowed-names={FRONT_PROXY.common_name}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p.client_cert(FRONT_PROXY)}",
        f"--proxy-client-key-file={p.client_key(FRONT_PROXY)}",
    )


def _gates(gates: FeatureGates) -> tuple[str, ...]:
    flag = gates.flag()
    return (f"--feature-gates={flag}",) if flag else ()
