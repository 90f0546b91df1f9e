"""CDI spec model: every field renders under its CDI key, empty fields are omitted, invalid specs are refused."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from dra_driver.cdi import (
    ContainerEdits,
    Device,
    DeviceNode,
    Hook,
    Mount,
    Spec,
    claim_device_name,
    parse_qualified_id,
    qualified_id,
    share,
    spec_file_name,
)
from dra_driver.errors import ConfigError
from tests.cdi.specs import CLAIM_UID, KIND, full, minimal


def test_every_field_renders_under_its_cdi_key() -> None:
    doc = json.loads(full().to_json())
    assert doc == {
        "cdiVersion": "0.7.0",
        "kind": KIND,
        "annotations": {"gpu.dra-driver.dev/claim": "ns/name"},
        "devices": [
            {
                "name": f"{CLAIM_UID}-gpu-0",
                "annotations": {"gpu.dra-driver.dev/uuid": "GPU-1"},
                "containerEdits": {
                    "env": ["NVIDIA_VISIBLE_DEVICES=GPU-1"],
                    "deviceNodes": [
                        {
                            "path": "/dev/nvidia0",
                            "hostPath": "/host/dev/nvidia0",
                            "type": "c",
                            "major": 195,
                            "minor": 0,
                            "fileMode": 0o666,
                            "permissions": "rw",
                            "uid": 1000,
                            "gid": 44,
                        },
                        {"path": "/dev/nvidia-caps/nvidia-cap12"},
                    ],
                    "mounts": [
                        {
                            "hostPath": "/usr/lib/libcuda.so.1",
                            "containerPath": "/usr/lib/libcuda.so.1",
                            "type": "none",
                            "options": ["ro", "nosuid", "bind"],
                        }
                    ],
                    "hooks": [
                        {
                            "hookName": "createContainer",
                            "path": "/usr/bin/nvidia-cdi-hook",
                            "args": ["nvidia-cdi-hook", "update-ldcache"],
                            "env": ["X=1"],
                            "timeout": 5,
                        }
                    ],
                    "additionalGids": [44, 109],
                },
            }
        ],
        "containerEdits": {
            "env": ["DRA_CLAIM=1"],
            "deviceNodes": [{"path": "/dev/nvidiactl"}],
            "mounts": [{"hostPath": "/run/mps", "containerPath": "/run/mps"}],
            "hooks": [{"hookName": "poststop", "path": "/bin/true"}],
            "additionalGids": [5],
        },
    }


def test_empty_fields_are_omitted() -> None:
    assert minimal().to_dict() == {
        "cdiVersion": "0.3.0",
        "kind": "example.com/gpu",
        "devices": [{"name": "gpu-0", "containerEdits": {"env": ["A=1"]}}],
    }


def test_zero_valued_numbers_are_rendered_not_dropped() -> None:
    node = DeviceNode("/dev/x", major=0, minor=0, uid=0, gid=0, file_mode=0)
    doc = minimal(devices=(Device("d", ContainerEdits(device_nodes=(node,))),)).to_dict()
    assert doc["devices"][0]["containerEdits"]["deviceNodes"] == [
        {"path": "/dev/x", "major": 0, "minor": 0, "fileMode": 0, "uid": 0, "gid": 0}
    ]


def test_json_is_deterministic_and_ends_with_a_newline() -> None:
    assert full().to_json() == full().to_json()
    assert full().to_json().endswith("}\n")


def test_device_ids_are_qualified() -> None:
    assert full().device_ids() == (f"{KIND}={CLAIM_UID}-gpu-0",)


def edits(**fields: Any) -> ContainerEdits:
    return ContainerEdits(**fields)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "gpu"}, "kind"),
        ({"kind": "example.com/"}, "kind"),
        ({"kind": "1example.com/gpu"}, "kind"),
        ({"kind": "example.com/gpu/x"}, "kind"),
        ({"kind": "example.com/" + "g" * 64}, "kind"),
        ({"devices": ()}, "devices"),
        ({"devices": (Device("-gpu", edits(env=("A=1",))),)}, "devices[0].name"),
        ({"devices": (Device("gpu_", edits(env=("A=1",))),)}, "devices[0].name"),
        ({"devices": (Device("gpu/0", edits(env=("A=1",))),)}, "devices[0].name"),
        ({"devices": (Device("a", edits(env=("A=1",))), Device("a", edits(env=("B=1",))))}, "devices[1].name"),
        ({"devices": (Device("gpu", edits()),)}, "devices[0].containerEdits"),
        ({"container_edits": edits(env=("=1",))}, "containerEdits.env[0]"),
        ({"container_edits": edits(env=("NOVALUE",))}, "containerEdits.env[0]"),
        ({"container_edits": edits(device_nodes=(DeviceNode("dev/x"),))}, "containerEdits.deviceNodes[0].path"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/dev/x", type="x"),))}, "containerEdits.deviceNodes[0].type"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/d", permissions="rx"),))}, "containerEdits.deviceNodes[0].permissions"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/d", permissions=""),))}, "containerEdits.deviceNodes[0].permissions"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/d", uid=-1),))}, "containerEdits.deviceNodes[0].uid"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/d", gid=2**32),))}, "containerEdits.deviceNodes[0].gid"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/d", file_mode=0o10000),))}, "containerEdits.deviceNodes[0].fileMode"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/d", host_path="d"),))}, "containerEdits.deviceNodes[0].hostPath"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/d"), DeviceNode("/e", major=-1)))}, "containerEdits.deviceNodes[1].major"),
        ({"container_edits": edits(device_nodes=(DeviceNode("/d", minor=2**63),))}, "containerEdits.deviceNodes[0].minor"),
        ({"container_edits": edits(mounts=(Mount("", "/x"),))}, "containerEdits.mounts[0].hostPath"),
        ({"container_edits": edits(mounts=(Mount("/x", "/x", ""),))}, "containerEdits.mounts[0].type"),
        ({"container_edits": edits(hooks=(Hook("onStart", "/bin/x"),))}, "containerEdits.hooks[0].hookName"),
        ({"container_edits": edits(hooks=(Hook("poststop", "x"),))}, "containerEdits.hooks[0].path"),
        ({"container_edits": edits(hooks=(Hook("poststop", "/x", timeout=0),))}, "containerEdits.hooks[0].timeout"),
        ({"container_edits": edits(hooks=(Hook("poststop", "/x", env=("X",)),))}, "containerEdits.hooks[0].env[0]"),
        ({"container_edits": edits(additional_gids=(2**32,))}, "containerEdits.additionalGids[0]"),
        ({"annotations": (("bad key!", "v"),)}, "annotations.bad key!"),
        ({"annotations": (("Example.com/x", "v" * 300 * 1024),)}, "annotations"),
    ],
)  # fmt: skip
def test_invalid_spec_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        replace(minimal(), **change)
    assert e.value.field == field


def test_permissions_none_and_any_rwm_combination_are_valid() -> None:
    for permissions in ("none", "r", "rw", "mwr"):
        minimal(container_edits=ContainerEdits(device_nodes=(DeviceNode("/dev/x", permissions=permissions),)))


def test_device_names_may_hold_dots_colons_and_start_with_digits() -> None:
    Spec("example.com/gpu", (Device("0:gpu.mig-1g_5gb", ContainerEdits(env=("A=1",))),))


def test_qualified_ids_round_trip() -> None:
    device_id = qualified_id(KIND, "gpu-0")
    assert device_id == f"{KIND}=gpu-0"
    assert parse_qualified_id(device_id) == (KIND, "gpu-0")


@pytest.mark.parametrize("device_id", ["gpu-0", "example.com=gpu", "example.com/gpu=", "example.com/gpu=-x"])
def test_unqualified_or_invalid_ids_are_refused(device_id: str) -> None:
    with pytest.raises(ConfigError):
        parse_qualified_id(device_id)


def test_claim_device_names_start_with_the_claim_uid() -> None:
    assert claim_device_name(CLAIM_UID, "gpu-0-mig-1g.5gb-3") == f"{CLAIM_UID}-gpu-0-mig-1g.5gb-3"
    with pytest.raises(ConfigError):
        claim_device_name(CLAIM_UID, "bad/device")


def test_spec_file_name_follows_the_cdi_transient_convention() -> None:
    assert spec_file_name(KIND, CLAIM_UID) == f"k8s.gpu.dra-driver.dev-gpu_{CLAIM_UID}.json"


def _driver_mounts(count: int = 6) -> tuple[Mount, ...]:
    return tuple(
        Mount(f"/host/lib/libnvidia-{i}.so.1", f"/usr/lib/libnvidia-{i}.so.1", "bind", ("ro",)) for i in range(count)
    )


def test_shared_edits_render_as_their_copies_would() -> None:
    nodes = (DeviceNode("/dev/nvidiactl"), DeviceNode("/dev/x", type="c", major=195, minor=255, file_mode=0o666))
    common = share(ContainerEdits(env=("A=1",), device_nodes=nodes, mounts=_driver_mounts()))
    copied = ContainerEdits(env=("A=1",), device_nodes=tuple(list(nodes)), mounts=tuple(list(common.mounts)))

    def spec(edits: ContainerEdits) -> Spec:
        own = ContainerEdits(env=("I=1",), device_nodes=(DeviceNode("/dev/nvidia0"),), mounts=edits.mounts)
        return Spec("example.com/gpu", (Device("gpu-0", own),), edits)

    assert spec(common).to_json() == spec(copied).to_json()
    assert spec(common).to_json() == json.dumps(spec(common).to_dict(), separators=(",", ":")) + "\n"
    shared = spec(common)
    shared.to_dict()["containerEdits"]["mounts"][0]["hostPath"] = "/changed"
    assert "/changed" not in shared.to_json(), "to_dict hands out fresh data, never the shared rendering"


def test_invalid_edits_are_never_shared_and_a_copy_of_shared_ones_is_checked_anew() -> None:
    bad = (*_driver_mounts(), Mount("relative/lib.so", "/usr/lib/lib.so"))
    for _ in range(2):  # a list that failed is never remembered as valid
        with pytest.raises(ConfigError, match=r"^containerEdits\.mounts\[6\]\.hostPath"):
            share(ContainerEdits(mounts=bad))
        with pytest.raises(ConfigError, match=r"devices\[0\]\.containerEdits\.mounts\[6\]\.hostPath"):
            Spec("example.com/gpu", (Device("gpu-0", ContainerEdits(mounts=bad)),))
    good = share(ContainerEdits(device_nodes=(DeviceNode("/dev/nvidiactl"),)))
    with pytest.raises(ConfigError, match=r"devices\[0\]\.containerEdits\.deviceNodes\[0\]\.path"):
        Spec("example.com/gpu", (Device("gpu-0", ContainerEdits(device_nodes=(DeviceNode("dev/x"),))),), good)
