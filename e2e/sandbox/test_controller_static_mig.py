"""The mode controller on a cluster WITHOUT partitionable devices (docs/controller.md, "Static MIG layouts").

Acceptance of issue 15: "MIG demand on a cluster without partitionable devices gets a static layout that fits the
queue". The session's sandbox serves partitionable devices (DRAPartitionableDevices is on by default), where the
plugin refuses a migLayout; so this module starts a second control plane of its own with that gate set false on
every component (``running_sandbox(gates_off=...)``, about 20 s) and overrides the fixtures that talk to it.

One node with one idle A100-40GB in whole mode, MIG off or on, opted in by label; the controller running; three pods
asking for MIG profiles (3g.20gb, 2g.10gb, 1g.5gb, which fit one A100-40GB together). Within the deadline the
controller writes a static migLayout of exactly those profiles, the plugin applies it (MIG switched on where it
was off, the GPU reset, the instances created), the slices publish the static MIG devices, all three pods run, and an Event on each claim
names the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from api import gpumodes
from dra_driver.classes import class_name, device_classes
from dra_driver.k8s import Kube, resource_path
from dra_driver.resourceslice.probe import probe
from dra_driver.slices.devices import label
from e2e import claims
from e2e.conftest import gpumodes_listable
from e2e.controller_proc import Controllers
from e2e.fixtures import Sandbox, running_sandbox
from e2e.plugin_node import PluginNode
from e2e.plugin_pods import delete_all, running
from e2e.wait import until
from nvml_sim.machine import model_of
from sandbox.classes import install_crds

pytestmark = [pytest.mark.sandbox]
R = "/apis/resource.k8s.io/v1"
GATE = "DRAPartitionableDevices"
DEADLINE_S = 60
QUEUE = ("3g.20gb", "2g.10gb", "1g.5gb")
"""One pod per profile; together they take 7 of the A100-40GB's 8 memory slices and 6 of its 7 compute slices."""


# -- a control plane of this module's own, without partitionable devices ----------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path_factory.mktemp("nopart"), "", 0, gates_off=(GATE,)) as running_one:
        yield running_one


@pytest.fixture(scope="module")
def kube(sandbox: Sandbox) -> Iterator[Kube]:
    api = sandbox.api_client()
    yield Kube(api)
    api.close()


@pytest.fixture(scope="module")
def cluster_ready(sandbox: Sandbox, kube: Kube) -> None:
    """The gate is off and the server drops sharedCounters; the shipped DeviceClasses and the NodeGpuModes CRD."""
    assert GATE in sandbox.feature_gates.disabled and GATE not in sandbox.feature_gates.effective
    caps = probe(kube)
    assert not caps.partitionable_devices, "the server kept sharedCounters with the gate off"
    for c in device_classes(caps=caps):
        kube.create(f"{R}/deviceclasses", c)
    install_crds(kube)
    until(lambda: gpumodes_listable(kube), "NodeGpuModes listable")


@pytest.fixture
def controller(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """``python -m controller`` acting only on nodes labelled ``(label)=true``: (label, metrics port, log)."""
    label = f"e2e-static-{uuid.uuid4().hex[:6]}"
    procs = Controllers(sandbox.kubeconfig, tmp_path)
    try:
        _, port, log = procs.start(label)
        yield label, port, log
    finally:
        procs.close()


# -- helpers -----------------------------------------------------------------------------------------------------


def _applied(kube: Kube, node: str) -> dict[str, Any] | None:
    """The node's NodeGpuModes once its plugin reports every GPU Applied for the current generation."""
    obj = kube.get(resource_path(gpumodes.API_VERSION, gpumodes.PLURAL, node))
    status = (obj or {}).get("status") or {}
    if obj is None or status.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    applied = [c for c in status.get("conditions") or [] if c["type"] == "Applied" and c["status"] == "True"]
    return obj if applied else None


def _instances(node: PluginNode) -> list[str]:
    """Profiles of the simulated GPU's MIG instances (GPU instance with a compute instance), by placement."""
    gpu = node.machine.state()["gpus"][0]
    model = model_of(gpu)
    out = []
    for gi in sorted(gpu["gpuInstances"], key=lambda g: g["start"]):
        profile = model.gi_profile_by_id(gi["profileId"])
        assert profile is not None and gi["computeInstances"], gi
        out.append(profile.name)
    return out


def _published(kube: Kube, node: str) -> list[dict[str, Any]]:
    slices = kube.list(f"{R}/resourceslices", fieldSelector=f"spec.nodeName={node}")
    return [d for s in slices for d in s["spec"].get("devices") or []]


def _notes(kube: Kube, ns: str, claim: str, text: str) -> list[str]:
    events = kube.list(f"/apis/events.k8s.io/v1/namespaces/{ns}/events")
    notes = [str(e.get("note")) for e in events if (e.get("regarding") or {}).get("name") == claim]
    return [n for n in notes if text in n]


# -- the test ----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("cluster_ready")
@pytest.mark.parametrize("mig_enabled", [False, True], ids=["mig-off", "mig-on"])
def test_mig_demand_without_partitionable_devices_gets_a_static_layout_that_fits_the_queue(
    gpu_node: Any, controller: tuple[str, int, Path], kube: Kube, namespace: str, mig_enabled: bool
) -> None:
    """MIG off: the plugin switches it on (a GPU reset on Ampere), then creates the layout. MIG on (the profile's
    default): a whole GPU in MIG mode, claimed through its full-size instance; the layout replaces that."""
    opt_in, _, log = controller
    node: PluginNode = gpu_node("single-a100", labels={opt_in: "true"}, mig_enabled=mig_enabled)
    uuid0 = node.machine.state()["gpus"][0]["uuid"]
    assert not [d for d in _published(kube, node.name) if "mig" in d["name"]]  # whole, MIG off: no MIG device
    pods = [
        claims.pod(kube, namespace, node.name, claims.template(kube, namespace, class_name(f"mig-{label(p)}")))
        for p in QUEUE
    ]
    obj: dict[str, Any] = until(
        partial(_applied, kube, node.name), f"the static layout written and applied (log: {log})", timeout=DEADLINE_S
    )
    (desired,) = obj["spec"]["gpus"]
    assert desired["uuid"] == uuid0 and desired["mode"] == "mig"
    assert sorted(desired["migLayout"]) == sorted(QUEUE)  # exactly the queue: nothing more is carved
    (observed,) = obj["status"]["gpus"]
    assert observed["state"] == "Applied" and sorted(observed["migLayout"]) == sorted(QUEUE)
    assert node.machine.state()["gpus"][0]["mig"]["current"] == 1
    assert sorted(_instances(node)) == sorted(QUEUE)  # the machine holds exactly what the layout lists
    published = _published(kube, node.name)
    mig = [d for d in published if "mig" in d["name"]]
    assert len(mig) == len(QUEUE) and all("consumesCounters" not in d for d in mig), mig  # static devices
    running(kube, namespace, pods, node)
    message = f"{node.name} gpu-0: whole → mig[{','.join(desired['migLayout'])}] for 3 pending claims"
    for pod, profile in zip(pods, QUEUE, strict=True):
        claim = claims.claim_of(kube, namespace, pod)
        assert claim is not None
        name = str(claim["metadata"]["name"])
        assert until(partial(_notes, kube, namespace, name, message), f"an Event on {name} naming the change")
        devices = claims.allocated_devices(kube, namespace, pod) or []
        assert len(devices) == 1 and f"-mig-{label(profile)}-" in devices[0], (profile, devices)
    delete_all(kube, namespace, pods)
