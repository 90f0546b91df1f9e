"""Our own kube-scheduler structured-parameters allocator (resource.k8s.io/v1, Kubernetes 1.37). Pure.

Inputs are API JSON (dicts): ``cluster_state(slices, classes, allocated_claims)``, a claim (or a pod's
claims) and a ``Node``. ``allocate`` returns an ``Allocation``, ``Unsatisfiable`` (with reasons) or
``Failed`` exactly where the scheduler would; ``explain`` adds per-request device counts. See
docs/allocator.md for the search order and how this maps to the upstream "incubating" allocator.
"""

from dra_driver.structured.allocate import allocate, allocate_claims
from dra_driver.structured.evaluate import DeviceStatus, RequestReport
from dra_driver.structured.explain import Explanation, PoolReport, explain
from dra_driver.structured.model import ClusterState, DeviceId, Node, PoolId
from dra_driver.structured.outcome import Allocation, ClaimAllocation, DeviceResult, Failed, Outcome, Unsatisfiable
from dra_driver.structured.parse import allocated_state, cluster_state, parse_claim, parse_node, parse_slice
from dra_driver.structured.reasons import Reason

__all__ = [
    "Allocation",
    "ClaimAllocation",
    "ClusterState",
    "DeviceId",
    "DeviceResult",
    "DeviceStatus",
    "Explanation",
    "Failed",
    "Node",
    "Outcome",
    "PoolId",
    "PoolReport",
    "Reason",
    "RequestReport",
    "Unsatisfiable",
    "allocate",
    "allocate_claims",
    "allocated_state",
    "cluster_state",
    "explain",
    "parse_claim",
    "parse_node",
    "parse_slice",
]
