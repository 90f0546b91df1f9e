"""What the cluster's resource.k8s.io API can take, decided once at start-up. Pure data.

Business logic receives this object and picks strategies from it; it never probes the server itself.
``dra_driver.resourceslice.probe`` fills it from a live API server.
"""

from __future__ import annotations

from dataclasses import dataclass

API_VERSIONS = ("v1", "v1beta2", "v1beta1")  # preference order


@dataclass(frozen=True)
class Capabilities:
    api_version: str = "v1"
    partitionable_devices: bool = True  # the server keeps sharedCounters / consumesCounters (KEP-4815)
    counters_in_own_slice: bool = True  # 1.35+: a slice holds devices or counter sets, never both
    device_taints: bool = True
    consumable_capacity: bool = True  # allowMultipleAllocations + capacity requestPolicy (KEP-5075)
    extended_resource_name: bool = True  # DeviceClass.spec.extendedResourceName

    def describe(self) -> list[str]:
        """What is degraded compared with a current cluster, in words."""
        notes = []
        if self.api_version != "v1":
            notes.append(f"resource.k8s.io/v1 not served; using {self.api_version}")
        if not self.partitionable_devices:
            notes.append(
                "partitionable devices (shared counters) unavailable: MIG is published as the static MIG "
                "devices that exist, time-slice replicas without the exclusive whole GPU"
            )
        elif not self.counters_in_own_slice:
            notes.append("counter sets share slices with their devices (server older than 1.35)")
        if not self.consumable_capacity:
            notes.append("consumable capacity unavailable: 'shared' mode is refused")
        if not self.extended_resource_name:
            notes.append("DeviceClass extendedResourceName unavailable: omitted")
        return notes


CURRENT = Capabilities()
