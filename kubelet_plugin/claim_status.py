"""Publish a prepared claim's device UUIDs in its ``status.devices``.

The write touches nothing but ``status.devices``: a JSON merge patch of ``/status`` carrying the whole list
(other drivers' entries, read just before, are kept: a merge patch replaces a list) and the
``resourceVersion`` that read returned, so a concurrent change makes it fail with a conflict and it is
retried on a fresh read. A ``PUT`` of the whole claim would also send ``status.allocation`` back, and the
API server refuses that when the re-encoded opaque config differs byte-wise from what it stored.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from dra_driver.k8s import MERGE_PATCH, ApiError
from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.cdi_specs import device_uuid
from kubelet_plugin.records import DeviceRecord

ATTEMPTS = 5


class ClaimApi(Protocol):
    """What the kubelet plugin needs of the API server (``dra_driver.k8s.Kube`` is one)."""

    def get(self, path: str) -> dict[str, Any] | None: ...

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> dict[str, Any]: ...


def claim_path(ref: ClaimRef) -> str:
    return f"/apis/resource.k8s.io/v1/namespaces/{ref.namespace}/resourceclaims/{ref.name}"


def status_devices(driver: str, devices: tuple[DeviceRecord, ...]) -> list[dict[str, Any]]:
    """This driver's ``status.devices`` entries for the prepared devices."""
    return [{"driver": driver, "pool": d.pool, "device": d.device, "data": {"uuid": device_uuid(d)}} for d in devices]


def write_device_status(
    kube: ClaimApi,
    driver: str,
    ref: ClaimRef,
    devices: tuple[DeviceRecord, ...],
    clog: logging.LoggerAdapter[logging.Logger],
) -> bool:
    """Best effort: True once written; False (logged) when the claim is gone or the server refuses."""
    ours = status_devices(driver, devices)
    path = claim_path(ref)
    for _ in range(ATTEMPTS):
        try:
            current = kube.get(path)
            if current is None or current["metadata"]["uid"] != ref.uid:
                clog.info("not recording device status: the claim is gone")
                return False
            keep = [d for d in current.get("status", {}).get("devices") or [] if d.get("driver") != driver]
            body = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": {"devices": keep + ours},
            }
            kube.patch(f"{path}/status", body, MERGE_PATCH)
            return True
        except ApiError as exc:
            if not exc.conflict:
                clog.warning("could not record device status on the claim (the server may not allow it): %s", exc)
                return False
    clog.warning("could not record device status on the claim: it kept changing")
    return False
