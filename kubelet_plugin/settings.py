"""The plugin's settings: flags mirrored by environment variables, resolved once at start-up."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from api.names import DEFAULT_DRIVER_NAME
from dra_driver.k8s import Timeouts
from kubelet_plugin.driver import ANSWER_WITHIN_S

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
    kubeconfig: Path | None  # None: in-cluster
    partitioning_config: Path | None
    rescan_seconds: float
    health_port: int  # liveness/readiness HTTP port; 0 = off
    pod_uid: str  # makes socket names unique per plugin pod (rolling updates)
    log_json: bool
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
    ("--kubeconfig", "KUBECONFIG", "", "kubeconfig (default: in-cluster)"),
    ("--partitioning-config", "PARTITIONING_CONFIG", "", "PartitioningConfig file (default: every GPU whole)"),
    ("--rescan-seconds", "RESCAN_SECONDS", "30", "hardware re-scan and republish period"),
    ("--health-port", "HEALTH_PORT", "0", "HTTP port for /healthz and /readyz (0: off)"),
    ("--pod-uid", "POD_UID", "", "plugin pod UID, for unique socket names (default: pid)"),
    ("--log-json", "LOG_JSON", "false", "log JSON lines"),
    ("--boot-id-file", "BOOT_ID_FILE", "/proc/sys/kernel/random/boot_id", "the kernel's boot ID"),
    ("--api-connect-timeout", "API_CONNECT_TIMEOUT", "5", "seconds to wait for a connection to the API server"),
    ("--api-read-timeout", "API_READ_TIMEOUT", "15", "seconds to wait for each read of an API server answer"),
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
        kubeconfig=opt(a.kubeconfig),
        partitioning_config=opt(a.partitioning_config),
        rescan_seconds=_number(parser, "--rescan-seconds", a.rescan_seconds, float, 0.1, 86400),
        health_port=int(_number(parser, "--health-port", a.health_port, int, 0, 65535)),
        pod_uid=a.pod_uid or str(os.getpid()),
        log_json=str(a.log_json).lower() in ("1", "true", "yes"),
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
