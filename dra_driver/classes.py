"""The DeviceClasses this driver ships: one per device type and one per MIG profile. Pure.

Class names are ``<type>.<domain>``, the domain being the driver name without a leading ``gpu.``:
``gpu.dra-driver.dev``, ``mig.dra-driver.dev``, ``mig-1g-5gb.dra-driver.dev``, ``timeslice.dra-driver.dev``.
The whole-GPU class maps the extended resource ``nvidia.com/gpu`` where the cluster supports it, so
pods that ask for ``nvidia.com/gpu: 1`` are served by DRA.
"""

from __future__ import annotations

from typing import Any

from api.names import DEFAULT_DRIVER_NAME, GROUP
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.slices.devices import label

DEFAULT_DRIVER = DEFAULT_DRIVER_NAME
EXTENDED_RESOURCE = "nvidia.com/gpu"

# MIG profile names of the GPUs this driver knows (A100 40/80GB, A30, H100 80GB, H200).
MIG_PROFILES = (
    "1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb",
    "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb",
    "1g.6gb", "1g.6gb+me", "2g.12gb", "2g.12gb+me", "4g.24gb",
    "1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb",
)  # fmt: skip


def _type_selector(driver: str, kind: str) -> str:
    return f'device.driver == "{driver}" && device.attributes["{driver}"].type == "{kind}"'


def _device_class(name: str, expression: str, description: str, extended: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selectors": [{"cel": {"expression": expression}}]}
    if extended:
        spec["extendedResourceName"] = extended
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name, "annotations": {f"{GROUP}/description": description}},
        "spec": spec,
    }


def class_name(kind: str, driver: str = DEFAULT_DRIVER) -> str:
    """``class_name("mig-1g-5gb")`` -> ``mig-1g-5gb.dra-driver.dev``."""
    return f"{kind}.{driver.removeprefix('gpu.')}"


def device_classes(driver: str = DEFAULT_DRIVER, caps: Capabilities | None = None) -> list[dict[str, Any]]:
    caps = caps or Capabilities()
    version = caps.api_version
    classes = [
        _device_class(
            class_name("gpu", driver),
            _type_selector(driver, "gpu"),
            "A whole NVIDIA GPU",
            EXTENDED_RESOURCE if caps.extended_resource_name else None,
        ),
        _device_class(class_name("mig", driver), _type_selector(driver, "mig"), "Any MIG partition"),
        _device_class(
            class_name("timeslice", driver),
            _type_selector(driver, "timeslice"),
            "A time-sliced replica of a GPU shared with other claims",
        ),
        _device_class(
            class_name("shared", driver),
            _type_selector(driver, "shared"),
            "A share of a GPU's memory and compute (MPS), many claims per GPU",
        ),
    ]
    for profile in MIG_PROFILES:
        expression = f'{_type_selector(driver, "mig")} && device.attributes["{driver}"].profile == "{profile}"'
        classes.append(
            _device_class(class_name(f"mig-{label(profile)}", driver), expression, f"A MIG {profile} partition")
        )
    for c in classes:
        c["apiVersion"] = f"resource.k8s.io/{version}"
    return classes
