"""Publish a prepared claim's device UUIDs in its ``status.devices``.

The API server refuses any write that changes ``status.allocation``, and compares the opaque config
parameters in it byte-wise: every server-side patch (merge, JSON, apply) re-encodes them as compact
JSON, a ``PUT`` from here re-encodes them the way Python's ``json`` does. So the write is a JSON merge
patch of ``/status`` carrying only ``status.devices`` (the whole list: other drivers' entries, read just
before, are kept) and the ``resourceVersion`` of that read; that fits claims written as compact JSON
(kubectl, Go clients). Where the server refuses it because the stored config is not compact (claims
written by a Python client), the claim as read goes back with a ``PUT`` of ``/status``. A conflict is
retried on a fresh read.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from dra_driver.k8s import MERGE_PATCH, ApiError, resource_path
from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.cdi_specs import device_uuid
from kubelet_plugin.records import DeviceRecord

ATTEMPTS = 5


class ClaimApi(Protocol):
    """What the kubelet plugin needs of the API server (``dra_driver.k8s.Kube`` is one)."""

    def get(self, path: str) -> dict[str, Any] | None: ...

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> dict[str, Any]: ...

    def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...


def claim_path(ref: ClaimRef) -> str:
    """The claim's REST path; namespace and name are validated and quoted (``InvalidName`` otherwise)."""
    return resource_path("resource.k8s.io/v1", "resourceclaims", ref.name, ref.namespace)


def status_devices(driver: str, devices: tuple[DeviceRecord, ...]) -> list[dict[str, Any]]:
    """This driver's ``status.devices`` entries for the prepared devices."""
    return [
        {"driver": driver, "pool": d.pool, "device": d.device, "data": {"uuid": device_uuid(d)}}
        | ({"shareID": d.share_id} if d.share_id else {})
        for d in devices
    ]


def _refused_allocation(exc: ApiError) -> bool:
    return exc.status == 422 and "status.allocation" in exc.message


def _write(kube: ClaimApi, path: str, current: dict[str, Any], ours: list[dict[str, Any]], driver: str) -> None:
    status = current.setdefault("status", {})
    devices = [d for d in status.get("devices") or [] if d.get("driver") != driver] + ours
    body = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "status": {"devices": devices}}
    try:
        kube.patch(f"{path}/status", body, MERGE_PATCH)
    except ApiError as exc:
        if not _refused_allocation(exc):
            raise
        status["devices"] = devices  # the opaque config as read, re-encoded as it was written
        kube.replace(f"{path}/status", current)


def write_device_status(
    kube: ClaimApi,
    driver: str,
    ref: ClaimRef,
    devices: tuple[DeviceRecord, ...],
    clog: logging.LoggerAdapter[logging.Logger],
    read: dict[str, Any] | None = None,
) -> bool:
    """Best effort: True once written; False (logged) when the claim is gone or the server refuses.

    ``read``: the claim as the prepare read it; the first attempt writes against it (its ``resourceVersion``)
    instead of reading again, and a conflict (it changed since) is retried on a fresh read."""
    ours = status_devices(driver, devices)
    path = claim_path(ref)
    for _ in range(ATTEMPTS):
        try:
            current, read = (read, None) if read is not None else (kube.get(path), None)
            if current is None or current["metadata"]["uid"] != ref.uid:
                clog.info("not recording device status: the claim is gone")
                return False
            _write(kube, path, current, ours, driver)
            return True
        except ApiError as exc:
            if not exc.conflict:
                clog.warning("could not record device status on the claim (the server may not allow it): %s", exc)
                return False
    clog.warning("could not record device status on the claim: it kept changing")
    return False
