"""The structure of DeviceClass, ResourceClaim and ResourceClaimTemplate in resource.k8s.io v1, v1beta2 and
v1beta1, written from k8s.io/api 1.37 ``resource/*/types.go``. Pure data.

v1 and v1beta2 share a shape: a request holds ``exactly`` or ``firstAvailable``. In v1beta1 the fields of
``exactly`` sit on the request itself, next to ``firstAvailable``.
"""

from __future__ import annotations

from collections.abc import Mapping

from cli.lint.schema import BOOLEAN, INTEGER, QUANTITY, STRING, Free, ListOf, MapOf, Scalar, Schema, Struct

GROUP = "resource.k8s.io"
VERSIONS = ("v1", "v1beta2", "v1beta1")
KINDS = ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate")

# Limits from k8s.io/api resource/v1/types.go.
MAX_REQUESTS = 32
MAX_SELECTORS = 32
MAX_FIRST_AVAILABLE = 8
MAX_CONSTRAINTS = 32
MAX_CONFIGS = 32
MAX_TOLERATIONS = 16
MAX_CEL_LENGTH = 10 * 1024
MAX_OPAQUE_PARAMETERS = 10 * 1024

OBJECT_META = Struct(
    "ObjectMeta",
    {
        "name": STRING,
        "generateName": STRING,
        "namespace": STRING,
        "selfLink": STRING,
        "uid": STRING,
        "resourceVersion": STRING,
        "generation": INTEGER,
        "creationTimestamp": Free(),
        "deletionTimestamp": Free(),
        "deletionGracePeriodSeconds": INTEGER,
        "labels": MapOf(STRING, "an object of string labels"),
        "annotations": MapOf(STRING, "an object of string annotations"),
        "ownerReferences": Free(),
        "finalizers": ListOf(STRING),
        "managedFields": Free(),
    },
)

SELECTOR = Struct(
    "DeviceSelector",
    {"cel": Struct("CELDeviceSelector", {"expression": Scalar("string", max_length=MAX_CEL_LENGTH)}, ("expression",))},
    ("cel",),
)
SELECTORS = ListOf(SELECTOR, MAX_SELECTORS)

TOLERATION = Struct(
    "DeviceToleration",
    {
        "key": STRING,
        "operator": Scalar("string", ("Exists", "Equal")),
        "value": STRING,
        "effect": Scalar("string", ("NoSchedule", "NoExecute", "None")),
        "tolerationSeconds": INTEGER,
    },
)
TOLERATIONS = ListOf(TOLERATION, MAX_TOLERATIONS)
CAPACITY = Struct("CapacityRequirements", {"requests": MapOf(QUANTITY, "an object of capacity name to quantity")})
DERIVED = ListOf(Struct("DeviceDerivedAttribute", {"name": STRING, "expression": STRING}, ("name", "expression")))
ALLOCATION_MODE = Scalar("string", ("ExactCount", "All"))

# The fields of an exact request (v1 ExactDeviceRequest; inline in a v1beta1 DeviceRequest).
_EXACT: dict[str, Schema] = {
    "deviceClassName": STRING,
    "selectors": SELECTORS,
    "allocationMode": ALLOCATION_MODE,
    "count": INTEGER,
    "adminAccess": BOOLEAN,
    "tolerations": TOLERATIONS,
    "capacity": CAPACITY,
    "derivedAttributes": DERIVED,
}
SUBREQUEST = Struct(
    "DeviceSubRequest",
    {"name": STRING, **{k: v for k, v in _EXACT.items() if k != "adminAccess"}},
    ("name", "deviceClassName"),
)
EXACT = Struct("ExactDeviceRequest", _EXACT, ("deviceClassName",))
FIRST_AVAILABLE = ListOf(SUBREQUEST, MAX_FIRST_AVAILABLE)

REQUEST_V1 = Struct("DeviceRequest", {"name": STRING, "exactly": EXACT, "firstAvailable": FIRST_AVAILABLE}, ("name",))
REQUEST_V1BETA1 = Struct("DeviceRequest", {"name": STRING, **_EXACT, "firstAvailable": FIRST_AVAILABLE}, ("name",))

OPAQUE = Struct(
    "OpaqueDeviceConfiguration", {"driver": STRING, "parameters": Free("opaque parameters")}, ("driver", "parameters")
)
CLAIM_CONFIG = Struct("DeviceClaimConfiguration", {"requests": ListOf(STRING), "opaque": OPAQUE}, ("opaque",))
CLASS_CONFIG = Struct("DeviceClassConfiguration", {"opaque": OPAQUE}, ("opaque",))
CONSTRAINT = Struct(
    "DeviceConstraint", {"requests": ListOf(STRING), "matchAttribute": STRING, "distinctAttribute": STRING}
)


def _claim_spec(request: Struct) -> Struct:
    devices = Struct(
        "DeviceClaim",
        {
            "requests": ListOf(request, MAX_REQUESTS),
            "constraints": ListOf(CONSTRAINT, MAX_CONSTRAINTS),
            "config": ListOf(CLAIM_CONFIG, MAX_CONFIGS),
        },
    )
    return Struct("ResourceClaimSpec", {"devices": devices})


def _top(kind: str, spec: Struct, extra: Mapping[str, Schema] | None = None) -> Struct:
    fields: dict[str, Schema] = {"apiVersion": STRING, "kind": STRING, "metadata": OBJECT_META, "spec": spec}
    return Struct(kind, {**fields, **(extra or {})}, ("metadata", "spec"))


def _shapes(request: Struct) -> dict[str, Struct]:
    claim_spec = _claim_spec(request)
    return {
        "DeviceClass": _top(
            "DeviceClass",
            Struct(
                "DeviceClassSpec",
                {"selectors": SELECTORS, "config": ListOf(CLASS_CONFIG, MAX_CONFIGS), "extendedResourceName": STRING},
            ),
        ),
        "ResourceClaim": _top("ResourceClaim", claim_spec, {"status": Free("status")}),
        "ResourceClaimTemplate": _top(
            "ResourceClaimTemplate",
            Struct("ResourceClaimTemplateSpec", {"metadata": OBJECT_META, "spec": claim_spec}, ("spec",)),
        ),
    }


_V1 = _shapes(REQUEST_V1)
SHAPES: dict[str, dict[str, Struct]] = {"v1": _V1, "v1beta2": _V1, "v1beta1": _shapes(REQUEST_V1BETA1)}


def shape(version: str, kind: str) -> Struct:
    return SHAPES[version][kind]
