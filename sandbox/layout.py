"""Where everything of one sandbox lives inside its work directory; the one place naming those files.

::

    <workdir>/
        supervisor.lock       flock held by the running supervisor (see instance.py)
        supervisor.pid        pid and start time of the supervisor process
        status.json           what runs, on which ports, since when (see status.py)
        kubeconfig            admin kubeconfig (system:masters)
        kubeconfigs/          one kubeconfig per control-plane component
        pki/                  CA, serving and client certificates, service-account keys
        etcd-data/            etcd's data directory (recreated on every start)
        logs/                 one log file per process: supervisor.log, etcd.log, kube-apiserver.log, ...
        partitioning.yaml     the GPU mode of every node's plugin, written by ``up`` from ``--mode``
        nodes/<node>/         node state: simulated GPUs (machine.json), plugin checkpoint (state/), CDI specs
                              (cdi/), plugin sockets; removed by ``down`` unless ``--keep-state``
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WORKDIR_ENV = "DRA_SANDBOX_DIR"


def default_workdir() -> Path:
    """``$DRA_SANDBOX_DIR``, else ``~/.cache/dra-driver/sandbox``."""
    value = os.environ.get(WORKDIR_ENV)
    return Path(value) if value else Path.home() / ".cache" / "dra-driver" / "sandbox"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def lock_file(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def component_kubeconfigs(self) -> Path:
        return self.root / "kubeconfigs"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd-data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"

    @property
    def partitioning_file(self) -> Path:
        return self.root / "partitioning.yaml"

    @property
    def nodes(self) -> Path:
        return self.root / "nodes"

    def node(self, name: str) -> Path:
        return self.nodes / name

    def machine_file(self, node: str) -> Path:
        """The node's simulated GPU machine (``dra-gpu sim ... <this file>`` operates on it)."""
        return self.node(node) / "machine.json"

    def chart_machine_file(self, node: str) -> Path:
        """With ``--driver helm``: the machine the chart's plugin racks in its state directory (``nodes/<node>/state``
        is the node's /var/lib/dra-gpu; python -m nvml_sim.entrypoint keeps it in ``simulated-gpus/``)."""
        return self.node(node) / "state" / "simulated-gpus" / "machine.json"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def component_kubeconfig(self, component: str) -> Path:
        return self.component_kubeconfigs / f"{component}.kubeconfig"
