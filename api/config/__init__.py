"""The driver's versioned opaque configuration (``gpu.dra-driver.dev/v1alpha1``) and its resolution. Pure.

- ``v1alpha1``: ``GpuConfig`` / ``MigDeviceConfig`` and ``decode_opaque``, the one validator used by the
  admission webhook, the manifest linter and the kubelet plugin;
- ``resolve``: which config entry applies to an allocated device (class < claim, last match wins);
- ``strict``: JSON/YAML decoding that refuses duplicate keys and stays within the API server's limits
  (3 MiB, 64 levels, bounded YAML aliases), and typed field access;
- ``quantity``: Kubernetes quantities as whole bytes (1 to 2⁶³-1), parsed without unbounded arithmetic.

Every error is an ``api.errors.ConfigError`` naming the field path. See docs/opaque-config.md.
"""

from api.config.resolve import (
    ConfigEntry,
    DeviceType,
    ResolvedConfigs,
    Source,
    decode_configs,
    default_config,
    resolve_allocation,
    resolve_configs,
)
from api.config.v1alpha1 import (
    DriverConfig,
    GpuConfig,
    MigDeviceConfig,
    Mps,
    TimeSlicing,
    decode_opaque,
)
from api.names import API_VERSION, DEFAULT_DRIVER_NAME

__all__ = [
    "API_VERSION",
    "DEFAULT_DRIVER_NAME",
    "ConfigEntry",
    "DeviceType",
    "DriverConfig",
    "GpuConfig",
    "MigDeviceConfig",
    "Mps",
    "ResolvedConfigs",
    "Source",
    "TimeSlicing",
    "decode_configs",
    "decode_opaque",
    "default_config",
    "resolve_allocation",
    "resolve_configs",
]
