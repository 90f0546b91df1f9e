"""The plugin's settings: flags mirrored by environment variables, resolved once at start-up."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from api.names import DEFAULT_DRIVER_NAME
from dra_driver import errors
from dra_driver.k8s import Timeouts
from dra_driver.kubeletplugin.protocol import ANSWER_WITHIN_S

DEFAULT_DRIVER = DEFAULT_DRIVER_NAME


@dataclass(frozen=True)
class Settings:
    node_name: str
    driver_name: str
    state_dir: Path  # checkpoint and sharing state
    cdi_dir: Path  # transient CDI specs (/var/run/cdi)
    plugins_dir: Path  # kubelet plugins dir: the DRA socket lives in <plugins_dir>/<driver>/
    registry_dir: Path  # kubelet plugins_registry: the registration socket
    driver_root: Path  # where the NVIDIA driver is installed, as this process sees it (/ or a mount of it)
    host_driver_root: str  # the same directory as the host (its container runtime) sees it: CDI mount sources
    nvml_lib: Path | None  # a libnvidia-ml.so.1 to load instead of the one under driver_root
    sysfs_root: Path  # the kernel's sysfs (/sys or a mount of the host's): the GPUs' NUMA nodes and PCIe roots
    kubeconfig: Path | None  # None: in-cluster
    partitioning_config: Path | None
    rescan_seconds: float
    health_port: int  # liveness/readiness HTTP port; 0 = off
    metrics_port: int  # Prometheus /metrics HTTP port; 0 = off
    metrics_address: str  # the address /metrics listens on
    xid_quiet_seconds: float  # an XID/ECC taint clears after this long without a new event (gpu_health.py)
    ignored_xids: frozenset[int]  # XIDs caused by applications: never tainted
    pod_uid: str  # makes socket names unique per plugin pod (rolling updates)
    log_json: bool
    claim_device_status: bool  # write prepared devices' UUIDs to the claim's status.devices (claim_status.py)
    boot_id_file: Path  # the kernel's boot ID; a change means the node rebooted since the checkpoint
    api_timeouts: (
        Timeouts  # connect / read timeout of every API request (one call must fit in the driver's answer budget)
    )

    @property
    def dra_socket(self) -> Path:
        return socket_paths(self.plugins_dir, self.registry_dir, self.driver_name, self.pod_uid)[0]

    @property
    def registration_socket(self) -> Path:
        return socket_paths(self.plugins_dir, self.registry_dir, self.driver_name, self.pod_uid)[1]


def socket_paths(plugins_dir: Path, registry_dir: Path, driver: str, pod_uid: str) -> tuple[Path, Path]:
    """The DRA socket and the registration socket of a plugin pod (its UID keeps rolling updates apart)."""
    return plugins_dir / driver / f"dra-{pod_uid}.sock", registry_dir / f"{driver}-{pod_uid}-reg.sock"


SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL

_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    # flag, env, default, help
    ("--node-name", "NODE_NAME", "", "name of this node (required)"),
    ("--driver-name", "DRIVER_NAME", DEFAULT_DRIVER, "DRA driver name"),
    ("--state-dir", "STATE_DIR", "/var/lib/dra-gpu", "checkpoint directory"),
    ("--cdi-dir", "CDI_DIR", "/var/run/cdi", "directory for per-claim CDI specs"),
    ("--plugins-dir", "KUBELET_PLUGINS_DIR", "/var/lib/kubelet/plugins", "kubelet plugins directory"),
    ("--registry-dir", "KUBELET_REGISTRY_DIR", "/var/lib/kubelet/plugins_registry", "kubelet plugin registry"),
    ("--driver-root", "DRIVER_ROOT", "/", "where the NVIDIA driver is installed: the host's / or where it is mounted"),
    (
        "--host-driver-root",
        "HOST_DRIVER_ROOT",
        "",
        "the driver root as the host sees it, for CDI mounts (default: --driver-root; set it when that is a mount)",
    ),
    ("--nvml-lib", "NVML_LIB", "", "path of libnvidia-ml.so.1 (default: the one under --driver-root)"),
    ("--sysfs-root", "SYSFS_ROOT", "/sys", "the host's sysfs, where the GPUs' NUMA nodes and PCIe roots are read"),
    ("--kubeconfig", "KUBECONFIG", "", "kubeconfig (default: in-cluster)"),
    ("--partitioning-config", "PARTITIONING_CONFIG", "", "PartitioningConfig file (default: every GPU whole)"),
    ("--rescan-seconds", "RESCAN_SECONDS", "30", "hardware re-scan and republish period"),
    ("--health-port", "HEALTH_PORT", "0", "HTTP port for /healthz and /readyz (0: off)"),
    ("--metrics-port", "METRICS_PORT", "0", "HTTP port for Prometheus /metrics (0: off; docs/metrics.md)"),
    ("--metrics-address", "METRICS_ADDRESS", "0.0.0.0", "address /metrics listens on"),
    (
        "--xid-quiet-seconds",
        "XID_QUIET_SECONDS",
        "60",
        "an XID/ECC device taint clears after this long without a new one",
    ),
    ("--ignored-xids", "IGNORED_XIDS", "13,31,43,45,68,109", "XIDs caused by applications: never tainted"),
    ("--pod-uid", "POD_UID", "", "plugin pod UID, for unique socket names (default: pid)"),
    ("--log-json", "LOG_JSON", "false", "log JSON lines"),
    (
        "--claim-device-status",
        "CLAIM_DEVICE_STATUS",
        "true",
        "write each prepared claim's device UUIDs to its status.devices, in the background (true or false)",
    ),
    ("--boot-id-file", "BOOT_ID_FILE", "/proc/sys/kernel/random/boot_id", "the kernel's boot ID"),
    ("--api-connect-timeout", "API_CONNECT_TIMEOUT", "5", "seconds to wait for a connection to the API server"),
    (
        "--api-read-timeout",
        "API_READ_TIMEOUT",
        "15",
        "seconds to wait for an API server's answer (on a watch: for each read)",
    ),
)


def parse(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="dra-gpu-plugin", description="DRA kubelet plugin for NVIDIA GPUs")
    for flag, env, default, help_text in _FLAGS:
        parser.add_argument(flag, default=os.environ.get(env, default), help=f"{help_text} (env {env})")
    a = parser.parse_args(argv)
    if not a.node_name:
        parser.error("--node-name (env NODE_NAME) is required")

    def opt(value: str) -> Path | None:
        return Path(value) if value else None

    settings = Settings(
        node_name=a.node_name,
        driver_name=a.driver_name,
        state_dir=Path(a.state_dir),
        cdi_dir=Path(a.cdi_dir),
        plugins_dir=Path(a.plugins_dir),
        registry_dir=Path(a.registry_dir),
        driver_root=Path(a.driver_root).absolute(),
        host_driver_root=a.host_driver_root or str(Path(a.driver_root).absolute()),
        nvml_lib=opt(a.nvml_lib),
        sysfs_root=Path(a.sysfs_root).absolute(),
        kubeconfig=opt(a.kubeconfig),
        partitioning_config=opt(a.partitioning_config),
        rescan_seconds=_number(parser, "--rescan-seconds", a.rescan_seconds, float, 0.1, 86400),
        health_port=int(_number(parser, "--health-port", a.health_port, int, 0, 65535)),
        metrics_port=int(_number(parser, "--metrics-port", a.metrics_port, int, 0, 65535)),
        metrics_address=a.metrics_address,
        xid_quiet_seconds=_number(parser, "--xid-quiet-seconds", a.xid_quiet_seconds, float, 1, 86400),
        ignored_xids=_xids(parser, a.ignored_xids),
        pod_uid=a.pod_uid or str(os.getpid()),
        log_json=str(a.log_json).lower() in ("1", "true", "yes"),
        claim_device_status=_bool(parser, "--claim-device-status", a.claim_device_status),
        boot_id_file=Path(a.boot_id_file),
        api_timeouts=_timeouts(parser, a.api_connect_timeout, a.api_read_timeout),
    )
    if not settings.host_driver_root.startswith("/"):
        parser.error(f"--host-driver-root: {settings.host_driver_root!r} must be an absolute path")
    for flag, sock in (("--plugins-dir", settings.dra_socket), ("--registry-dir", settings.registration_socket)):
        if len(os.fsencode(sock)) > SOCKET_PATH_MAX:
            parser.error(
                f"{flag}: the socket {sock} is {len(os.fsencode(sock))} bytes long; a Unix socket path may have at "
                f"most {SOCKET_PATH_MAX}: use a shorter directory"
            )
    return settings


def _number(
    parser: argparse.ArgumentParser, flag: str, value: str, kind: type[float] | type[int], low: float, high: float
) -> float:
    try:
        number = kind(value)
    except ValueError:
        parser.error(f"{flag}: {value!r} is not {'a whole number' if kind is int else 'a number'} ({low:g}..{high:g})")
    if not low <= number <= high:
        parser.error(f"{flag}: {number:g} is out of range ({low:g}..{high:g})")
    return number


def _bool(parser: argparse.ArgumentParser, flag: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        parser.error(f"{flag}: {value!r} is not a boolean; valid: true, false")
    return value.lower() == "true"


def _xids(parser: argparse.ArgumentParser, value: str) -> frozenset[int]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        parser.error(f"--ignored-xids: {value!r} is not a comma-separated list of XID numbers (e.g. 13,31,43)")
    return frozenset(int(p) for p in parts)


def _timeouts(parser: argparse.ArgumentParser, connect: str, read: str) -> Timeouts:
    try:
        timeouts = Timeouts(float(connect), float(read))
    except ValueError:
        parser.error(
            f"--api-connect-timeout / --api-read-timeout must be numbers of seconds (got {connect!r}, {read!r})"
        )
    if min(timeouts.connect, timeouts.read) <= 0 or timeouts.connect + timeouts.read >= ANSWER_WITHIN_S:
        parser.error(
            f"API timeouts must be positive and add up to less than the {ANSWER_WITHIN_S:g}s in which a prepare "
            "is answered (the kubelet waits 45 s) "
            f"(got connect {timeouts.connect:g}s, read {timeouts.read:g}s)"
        )
    return timeouts


def metrics_listen_error(address: str, port: int, exc: OSError | UnicodeError) -> errors.FatalError:
    """The start-up error for a ``--metrics-port`` / ``--metrics-address`` that cannot be listened on."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return errors.FatalError(
        f"--metrics-port / --metrics-address: cannot listen on {address}:{port} ({reason}); choose a free "
        "port and an address of this host, or --metrics-port 0 to turn metrics off"
    )
