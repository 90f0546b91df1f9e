"""The driver's shipped DeviceClasses in the sandbox: ``up`` installs them once the plugins run, rendered for the
sandbox's API server as ``dra-gpu classes --kubeconfig`` renders them (capabilities probed), so a claim naming
``gpu.dra-driver.dev`` or ``mig-1g-10gb.dra-driver.dev`` allocates without installing anything first.
"""

from __future__ import annotations

from dra_driver.classes import DEFAULT_DRIVER, device_classes
from dra_driver.k8s import Kube
from dra_driver.resourceslice.probe import probe


def install(kube: Kube, driver: str = DEFAULT_DRIVER) -> int:
    """Create every shipped DeviceClass that does not exist yet; returns how many were created."""
    caps = probe(kube)
    base = f"/apis/resource.k8s.io/{caps.api_version}/deviceclasses"
    created = 0
    for device_class in device_classes(driver, caps):
        if kube.get(f"{base}/{device_class['metadata']['name']}") is None:
            kube.create(base, device_class)
            created += 1
    return created
