"""The driver's shipped DeviceClasses in the sandbox: ``up`` installs them once the plugins run, rendered for the
sandbox's API server as ``dra-gpu classes --kubeconfig`` renders them (capabilities probed), so a claim naming
``gpu.dra-driver.dev`` or ``mig-1g-10gb.dra-driver.dev`` allocates without installing anything first. It installs
the driver's CustomResourceDefinitions too (NodeGpuModes, ``api/gpumodes_crd.py``), which the plugins watch.
"""

from __future__ import annotations

from api.gpumodes_crd import manifest as node_gpu_modes_crd
from dra_driver.classes import DEFAULT_DRIVER, device_classes
from dra_driver.k8s import Kube
from dra_driver.resourceslice.probe import probe


def install(kube: Kube, driver: str = DEFAULT_DRIVER) -> int:
    """Create the driver's CRDs and every shipped DeviceClass that do not exist yet; returns how many DeviceClasses
    were created."""
    install_crds(kube)
    caps = probe(kube)
    base = f"/apis/resource.k8s.io/{caps.api_version}/deviceclasses"
    created = 0
    for device_class in device_classes(driver, caps):
        if kube.get(f"{base}/{device_class['metadata']['name']}") is None:
            kube.create(base, device_class)
            created += 1
    return created


def install_crds(kube: Kube) -> None:
    """Create the NodeGpuModes CRD unless it exists (the plugins' watch finds it once it is served)."""
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    crd = node_gpu_modes_crd()
    if kube.get(f"{crds}/{crd['metadata']['name']}") is None:
        kube.create(crds, crd)
