"""Spec builders shared by the CDI tests."""

from __future__ import annotations

from dra_driver.cdi import ContainerEdits, Device, DeviceNode, Hook, Mount, Spec

KIND = "k8s.gpu.dra-driver.dev/gpu"
CLAIM_UID = "0a1b2c3d-0000-4000-8000-000000000001"


def minimal(**spec_fields: object) -> Spec:
    """A spec that needs nothing newer than the earliest CDI version."""
    fields: dict[str, object] = {
        "kind": "example.com/gpu",
        "devices": (Device("gpu-0", ContainerEdits(env=("A=1",))),),
    }
    fields.update(spec_fields)
    return Spec(**fields)  # type: ignore[arg-type]


def full() -> Spec:
    """Every field of the model set at least once."""
    node = DeviceNode(
        path="/dev/nvidia0",
        host_path="/host/dev/nvidia0",
        type="c",
        major=195,
        minor=0,
        file_mode=0o666,
        permissions="rw",
        uid=1000,
        gid=44,
    )
    device_edits = ContainerEdits(
        env=("NVIDIA_VISIBLE_DEVICES=GPU-1",),
        device_nodes=(node, DeviceNode(path="/dev/nvidia-caps/nvidia-cap12")),
        mounts=(Mount("/usr/lib/libcuda.so.1", "/usr/lib/libcuda.so.1", "none", ("ro", "nosuid", "bind")),),
        hooks=(
            Hook("createContainer", "/usr/bin/nvidia-cdi-hook", ("nvidia-cdi-hook", "update-ldcache"), ("X=1",), 5),
        ),
        additional_gids=(44, 109),
    )
    common = ContainerEdits(
        env=("DRA_CLAIM=1",),
        device_nodes=(DeviceNode("/dev/nvidiactl"),),
        mounts=(Mount("/run/mps", "/run/mps"),),
        hooks=(Hook("poststop", "/bin/true"),),
        additional_gids=(5,),
    )
    return Spec(
        kind=KIND,
        devices=(Device(f"{CLAIM_UID}-gpu-0", device_edits, (("gpu.dra-driver.dev/uuid", "GPU-1"),)),),
        container_edits=common,
        annotations=(("gpu.dra-driver.dev/claim", "ns/name"),),
    )
