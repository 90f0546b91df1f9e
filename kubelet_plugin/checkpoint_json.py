"""The checkpoint document as JSON: every version ever written is read, the current one written. Pure.

Version 3::

    {"version": 3, "generation": <int>, "bootID": "…", "claims": {"<uid>": {"namespace": …, "name": …,
        "state": "PrepareStarted" | "PrepareCompleted" | "UnprepareStarted",
        "devices": [<device>…], "cdiSpec": "<file>" | null}}}

``generation`` grows by one on every write (the checkpoint keeps a durable and a volatile copy; the newer
one wins). Version 2 (no ``generation``: 0) and version 1 (no ``bootID``, ``"prepared": bool``, whole GPUs
only) are migrated on read. Reading is strict:
``ConfigError`` names the field that is wrong. JSON conversion lives in this module only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from api.config import strict
from api.errors import ConfigError
from dra_driver.kubeletplugin.protocol import ClaimRef
from kubelet_plugin.records import (
    HARDWARE_KEYS,
    STATES,
    ClaimRecord,
    DeviceRecord,
    Document,
    Hardware,
    MigPartition,
    MpsSettings,
    SharedGpu,
    State,
    TimeSliceReplica,
    WholeGpu,
)

VERSION = 3


def _hardware_json(hw: Hardware) -> dict[str, Any]:
    match hw:
        case WholeGpu() | SharedGpu():
            return {"gpuUUID": hw.gpu_uuid, "gpuIndex": hw.gpu_index}
        case TimeSliceReplica():
            return {"gpuUUID": hw.gpu_uuid, "gpuIndex": hw.gpu_index, "interval": hw.interval}
        case MigPartition():
            return {
                "gpuUUID": hw.gpu_uuid,
                "gpuIndex": hw.gpu_index,
                "profile": hw.profile,
                "placement": {"start": hw.placement_start, "size": hw.placement_size},
                "gpuInstanceID": hw.gpu_instance_id,
                "computeInstanceID": hw.compute_instance_id,
                "migUUID": hw.mig_uuid,
                "created": hw.created,
            }


def _device_json(d: DeviceRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requestNames": list(d.request_names),
        "pool": d.pool,
        "device": d.device,
        "cdiDeviceIDs": list(d.cdi_device_ids),
        "shareID": d.share_id,
        HARDWARE_KEYS[type(d.hardware)]: _hardware_json(d.hardware),
    }
    if d.mps is not None:
        out["mps"] = {
            "controlDaemon": d.mps.control_daemon,
            "pipeDirectory": d.mps.pipe_directory,
            "activeThreadPercentage": d.mps.active_thread_percentage,
            "pinnedMemoryLimits": dict(d.mps.pinned_memory_limits),
        }
    return out


def document_json(doc: Document) -> dict[str, Any]:
    claims = {
        uid: {
            "namespace": c.claim.namespace,
            "name": c.claim.name,
            "state": c.state,
            "devices": [_device_json(d) for d in c.devices],
            "cdiSpec": c.cdi_spec,
        }
        for uid, c in sorted(doc.claims.items())
    }
    return {"version": VERSION, "generation": doc.generation, "bootID": doc.boot_id, "claims": claims}


T = TypeVar("T")


def _opt(value: object, read: Callable[[object, str], T], field: str) -> T | None:
    return None if value is None else read(value, field)


def _read_gpu(o: Mapping[str, Any], f: str) -> tuple[str, int]:
    return strict.want_str(o.get("gpuUUID"), f"{f}.gpuUUID"), strict.want_int(o.get("gpuIndex"), f"{f}.gpuIndex", 0)


def _read_hardware(raw: Mapping[str, Any], f: str) -> Hardware:
    kinds = [k for k in HARDWARE_KEYS.values() if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f, f"needs exactly one of {', '.join(HARDWARE_KEYS.values())}, found {kinds or 'none'}")
    at = f"{f}.{kinds[0]}"
    o = strict.want_mapping(raw[kinds[0]], at)
    uuid, index = _read_gpu(o, at)
    if kinds[0] == "gpu":
        strict.check_keys(o, ("gpuUUID", "gpuIndex"), at)
        return WholeGpu(uuid, index)
    if kinds[0] == "shared":
        strict.check_keys(o, ("gpuUUID", "gpuIndex"), at)
        return SharedGpu(uuid, index)
    if kinds[0] == "timeslice":
        strict.check_keys(o, ("gpuUUID", "gpuIndex", "interval"), at)
        return TimeSliceReplica(uuid, index, strict.want_str(o.get("interval"), f"{at}.interval"))
    keys = ("gpuUUID", "gpuIndex", "profile", "placement", "gpuInstanceID", "computeInstanceID", "migUUID", "created")
    strict.check_keys(o, keys, at)
    placement = strict.want_mapping(o.get("placement"), f"{at}.placement")
    strict.check_keys(placement, ("start", "size"), f"{at}.placement")
    return MigPartition(
        uuid,
        index,
        strict.want_str(o.get("profile"), f"{at}.profile"),
        strict.want_int(placement.get("start"), f"{at}.placement.start", 0),
        strict.want_int(placement.get("size"), f"{at}.placement.size", 1),
        _opt(o.get("gpuInstanceID"), strict.want_int, f"{at}.gpuInstanceID"),
        _opt(o.get("computeInstanceID"), strict.want_int, f"{at}.computeInstanceID"),
        _opt(o.get("migUUID"), strict.want_str, f"{at}.migUUID"),
        strict.want_bool(o.get("created"), f"{at}.created"),
    )


def _read_mps(raw: object, f: str) -> MpsSettings:
    o = strict.want_mapping(raw, f)
    strict.check_keys(o, ("controlDaemon", "pipeDirectory", "activeThreadPercentage", "pinnedMemoryLimits"), f)
    limits = strict.want_mapping(o.get("pinnedMemoryLimits", {}), f"{f}.pinnedMemoryLimits")
    return MpsSettings(
        strict.want_str(o.get("controlDaemon"), f"{f}.controlDaemon"),
        strict.want_str(o.get("pipeDirectory"), f"{f}.pipeDirectory"),
        _opt(o.get("activeThreadPercentage"), strict.want_int, f"{f}.activeThreadPercentage"),
        tuple((k, strict.want_int(v, f"{f}.pinnedMemoryLimits.{k}", 1)) for k, v in limits.items()),
    )


def _read_device(raw: object, f: str) -> DeviceRecord:
    o = strict.want_mapping(raw, f)
    common = ("requestNames", "pool", "device", "cdiDeviceIDs", "shareID", "mps")
    strict.check_keys(o, (*common, *HARDWARE_KEYS.values()), f)
    return DeviceRecord(
        strict.want_str_list(o.get("requestNames"), f"{f}.requestNames"),
        strict.want_str(o.get("pool"), f"{f}.pool"),
        strict.want_str(o.get("device"), f"{f}.device"),
        _read_hardware(o, f),
        strict.want_str_list(o.get("cdiDeviceIDs"), f"{f}.cdiDeviceIDs"),
        _opt(o.get("shareID"), strict.want_str, f"{f}.shareID"),
        _opt(o.get("mps"), _read_mps, f"{f}.mps"),
    )


def _read_claims(raw: object, f: str) -> dict[str, ClaimRecord]:
    claims = {}
    for uid, value in strict.want_mapping(raw, f).items():
        at = f"{f}[{uid!r}]"
        o = strict.want_mapping(value, at)
        strict.check_keys(o, ("namespace", "name", "state", "devices", "cdiSpec"), at)
        namespace, name = (
            strict.want_str(o.get("namespace"), f"{at}.namespace"),
            strict.want_str(o.get("name"), f"{at}.name"),
        )
        state = strict.want_choice(o.get("state"), f"{at}.state", STATES, "state")
        raw_devices = strict.want_list(o.get("devices"), f"{at}.devices")
        claims[uid] = ClaimRecord(
            ClaimRef(namespace, uid, name),
            cast(State, state),  # want_choice checked it is one of STATES
            tuple(_read_device(d, f"{at}.devices[{i}]") for i, d in enumerate(raw_devices)),
            _opt(o.get("cdiSpec"), strict.want_str, f"{at}.cdiSpec"),
        )
    return claims


def _migrate_v1(o: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: ``prepared`` bool -> ``state``; devices were whole GPUs with flat gpuUUID/gpuIndex."""
    strict.check_keys(o, ("version", "claims"), "")
    claims = {}
    for uid, raw in strict.want_mapping(o.get("claims"), "claims").items():
        at = f"claims[{uid!r}]"
        c = strict.want_mapping(raw, at)
        strict.check_keys(c, ("namespace", "name", "prepared", "devices", "cdiSpec"), at)
        devices = []
        for i, raw_device in enumerate(strict.want_list(c.get("devices"), f"{at}.devices")):
            d = dict(strict.want_mapping(raw_device, f"{at}.devices[{i}]"))
            v1_keys = ("requestNames", "pool", "device", "cdiDeviceIDs", "gpuUUID", "gpuIndex")
            strict.check_keys(d, v1_keys, f"{at}.devices[{i}]")
            gpu = {"gpuUUID": d.pop("gpuUUID", None), "gpuIndex": d.pop("gpuIndex", None)}
            devices.append({**d, "gpu": gpu})
        prepared = strict.want_bool(c.get("prepared"), f"{at}.prepared")
        state = "PrepareCompleted" if prepared else "PrepareStarted"
        claims[uid] = {**{k: v for k, v in c.items() if k != "prepared"}, "state": state, "devices": devices}
    return {"version": 2, "bootID": None, "claims": claims}


def read_document(text: bytes | str) -> Document:
    """Parse a checkpoint of any version this plugin ever wrote; raises ``ConfigError`` naming the bad field."""
    o = strict.want_mapping(strict.loads_json(text, ""), "<root>")
    version = strict.want_int(o.get("version"), "version", 1)
    if version > VERSION:
        raise ConfigError("version", f"{version} was written by a newer plugin (this one reads 1..{VERSION})")
    if version == 1:
        o = _migrate_v1(o)
    if version < 3:
        strict.check_keys(o, ("version", "bootID", "claims"), "")
        generation = 0
    else:
        strict.check_keys(o, ("version", "generation", "bootID", "claims"), "")
        generation = strict.want_int(o.get("generation"), "generation", 0)
    boot_id = _opt(o.get("bootID"), strict.want_str, "bootID")
    return Document(boot_id, _read_claims(o.get("claims"), "claims"), generation)
