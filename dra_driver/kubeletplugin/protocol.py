"""The kubelet ↔ DRA plugin protocol in our own types, and the adapters to and from its protobufs.

Protobuf messages stop here: the kubelet plugin (server) and the simulated kubelet (client) both
speak these frozen dataclasses. ``DRA_V1`` / ``DRA_V1BETA1`` are the gRPC service names a plugin
lists in ``supported_versions``; the adapters are the same for both versions except ``share_id``
(v1 only). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.gen.dra.v1 import api_pb2 as v1
from api.gen.dra.v1beta1 import api_pb2 as v1beta1
from dra_driver.k8s import shorten

PLUGIN_TYPE = "DRAPlugin"
DRA_V1 = "v1.DRAPlugin"
DRA_V1BETA1 = "v1beta1.DRAPlugin"
HEALTH_V1ALPHA1 = "v1alpha1.DRAResourceHealth"
HEALTH_V1 = "v1.DRAResourceHealth"
DRA_VERSIONS = (DRA_V1, DRA_V1BETA1)  # best first
KUBELET_CALL_TIMEOUT_S = 45.0  # the kubelet gives up on NodePrepareResources / NodeUnprepareResources after this
ANSWER_WITHIN_S = KUBELET_CALL_TIMEOUT_S - 5.0  # a plugin answers with 5 s to spare (the work may go on)

_PB = {DRA_V1: v1, DRA_V1BETA1: v1beta1}


@dataclass(frozen=True)
class ClaimRef:
    namespace: str
    uid: str
    name: str

    def __str__(self) -> str:
        """For log lines: long parts are shortened (a claim may not have been validated yet)."""
        return f"{shorten(self.namespace, 64)}/{shorten(self.name, 254)} ({shorten(self.uid)})"


@dataclass(frozen=True)
class PreparedDevice:
    request_names: tuple[str, ...]
    pool: str
    device: str
    cdi_device_ids: tuple[str, ...]
    share_id: str | None = None


@dataclass(frozen=True)
class PrepareResult:
    devices: tuple[PreparedDevice, ...] = ()
    error: str = ""


def best_version(supported: list[str] | tuple[str, ...]) -> str | None:
    """The DRA service version to use with a plugin: v1 if it has it, else v1beta1, else None."""
    return next((v for v in DRA_VERSIONS if v in supported), None)


def claims_to_pb(version: str, claims: list[ClaimRef]) -> list[Any]:
    pb = _PB[version]
    return [pb.Claim(namespace=c.namespace, uid=c.uid, name=c.name) for c in claims]


def claims_from_pb(claims: Any) -> list[ClaimRef]:
    return [ClaimRef(c.namespace, c.uid, c.name) for c in claims]


def prepare_request(version: str, claims: list[ClaimRef]) -> Any:
    return _PB[version].NodePrepareResourcesRequest(claims=claims_to_pb(version, claims))


def unprepare_request(version: str, claims: list[ClaimRef]) -> Any:
    return _PB[version].NodeUnprepareResourcesRequest(claims=claims_to_pb(version, claims))


def _device_to_pb(version: str, d: PreparedDevice) -> Any:
    fields: dict[str, Any] = {
        "request_names": list(d.request_names),
        "pool_name": d.pool,
        "device_name": d.device,
        "cdi_device_ids": list(d.cdi_device_ids),
    }
    if version == DRA_V1 and d.share_id is not None:
        fields["share_id"] = d.share_id
    return _PB[version].Device(**fields)


def prepare_response(version: str, results: dict[str, PrepareResult]) -> Any:
    pb = _PB[version]
    claims = {
        uid: pb.NodePrepareResourceResponse(devices=[_device_to_pb(version, d) for d in r.devices], error=r.error)
        for uid, r in results.items()
    }
    return pb.NodePrepareResourcesResponse(claims=claims)


def unprepare_response(version: str, errors: dict[str, str]) -> Any:
    pb = _PB[version]
    claims = {uid: pb.NodeUnprepareResourceResponse(error=err) for uid, err in errors.items()}
    return pb.NodeUnprepareResourcesResponse(claims=claims)


def prepare_results_from_pb(response: Any) -> dict[str, PrepareResult]:
    out = {}
    for uid, r in response.claims.items():
        devices = tuple(
            PreparedDevice(
                request_names=tuple(d.request_names),
                pool=d.pool_name,
                device=d.device_name,
                cdi_device_ids=tuple(d.cdi_device_ids),
                share_id=d.share_id if hasattr(d, "share_id") and d.HasField("share_id") else None,
            )
            for d in r.devices
        )
        out[uid] = PrepareResult(devices, r.error)
    return out


def unprepare_errors_from_pb(response: Any) -> dict[str, str]:
    return {uid: r.error for uid, r in response.claims.items()}
