"""The driver's names, defined once: its API group (opaque configs, partitioning, the CRDs it ships) and the
default DRA driver name it publishes devices under. Every other module takes these from here. Pure.

The driver name is configurable per installation (``--driver-name``, the chart's ``driverName``); the API
group is not: it names the schema of the driver's own objects.
"""

from __future__ import annotations

GROUP = "gpu.dra-driver.dev"
"""The API group of the driver's own types (``GpuConfig``, ``PartitioningConfig``, ...)."""

CONFIG_VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{CONFIG_VERSION}"

DEFAULT_DRIVER_NAME = GROUP
"""The DRA driver name used unless an installation chooses another (never a vendor's domain)."""
