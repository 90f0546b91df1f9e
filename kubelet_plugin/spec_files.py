"""The claims' CDI spec files in the CDI spec directory: write, remove, list. The I/O edge of ``cdi_specs``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from dra_driver import cdi
from dra_driver.cdi import ContainerEdits
from kubelet_plugin.cdi_specs import claim_kind, claim_spec
from kubelet_plugin.records import DeviceRecord


@dataclass(frozen=True)
class SpecFiles:
    driver: str
    directory: Path
    mig_minors: Mapping[str, int]  # /proc/driver/nvidia-caps/mig-minors (empty: the driver's own layout)
    driver_edits: ContainerEdits  # the driver's files in every spec (cdi_specs.driver_edits)

    @property
    def kind(self) -> str:
        return claim_kind(self.driver)

    def file_name(self, claim_uid: str) -> str:
        return cdi.spec_file_name(self.kind, claim_uid)

    def write(
        self, claim_uid: str, devices: tuple[DeviceRecord, ...], gpu_minors: Mapping[int, int]
    ) -> tuple[tuple[DeviceRecord, ...], str]:
        """Write the claim's spec atomically; returns the devices with their CDI device IDs, and the file name.

        ``gpu_minors`` maps GPU index -> minor number."""
        spec = claim_spec(self.driver, claim_uid, devices, gpu_minors, self.mig_minors, self.driver_edits)
        ids = spec.device_ids()
        completed = tuple(replace(d, cdi_device_ids=(ids[i],)) for i, d in enumerate(devices))
        filename = self.file_name(claim_uid)
        # not durable: after a reboot start-up repair writes the specs of prepared claims again and removes the
        # others (docs/kubelet-plugin.md, "Durable writes"); a killed process leaves the old file or the new one
        cdi.write_spec(self.directory, spec, filename, durable=False)
        return completed, filename

    def remove(self, claim_uid: str) -> bool:
        """False when there was no spec (idempotent). Not durable, like ``write``."""
        return cdi.remove_spec(self.directory, self.file_name(claim_uid), durable=False)

    def listed(self) -> dict[str, Path]:
        """Every spec of ours in the directory: claim UID -> path."""
        return cdi.list_specs(self.directory, self.kind)

    def remove_stale_temp_files(self) -> list[Path]:
        return cdi.remove_stale_temp_files(self.directory, self.kind)
