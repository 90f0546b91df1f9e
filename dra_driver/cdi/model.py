"""A CDI spec as frozen dataclasses, validated on construction and rendered to JSON. Pure.

Field names and JSON keys follow ``specs-go/config.go`` of tags.cncf.io/container-device-interface.
``to_dict`` omits empty optional fields and declares ``cdiVersion`` as the minimum the content needs
(see ``version.py``), so no spec claims more than it uses. ``intelRdt`` and ``netDevices`` are not
modelled: a GPU driver has no use for them.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from dra_driver.cdi import names
from dra_driver.cdi.version import minimum_version
from dra_driver.errors import ConfigError

HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
DEVICE_NODE_TYPES = ("b", "c", "u", "p")
UINT32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1
_ANNOTATION_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
ANNOTATIONS_MAX_BYTES = 256 * 1024

Annotations = tuple[tuple[str, str], ...]


class _SeenTuples:
    """Values computed for long tuples seen before, by identity: a node's driver-file mounts are the same tuple
    in every claim's spec, so they are validated and rendered once, not on every prepare. Each tuple is kept
    with its value, so its id cannot be reused while it is remembered; the oldest are forgotten first."""

    LONG = 4  # shorter tuples (a claim's own edits, new every time) are not remembered
    SIZE = 32

    def __init__(self) -> None:
        self._items: dict[int, tuple[tuple[Any, ...], Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        entry = self._items.get(id(key))
        return entry[1] if entry is not None and entry[0] is key else None

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        if len(key) < self.LONG:
            return
        with self._lock:
            if len(self._items) >= self.SIZE:
                del self._items[next(iter(self._items))]
            self._items[id(key)] = (key, value)


_VALID_MOUNTS = _SeenTuples()
_RENDERED_MOUNTS = _SeenTuples()


@dataclass(frozen=True)
class DeviceNode:
    path: str  # in the container
    host_path: str | None = None  # needs 0.5.0; defaults to path
    type: str | None = None  # b, c, u or p
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None  # permission bits, e.g. 0o666
    permissions: str | None = None  # cgroup access: some of "rwm", or "none"
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    type: str | None = None  # needs 0.4.0; "none" for bind mounts
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hook:
    hook_name: str  # one of HOOK_NAMES
    path: str  # absolute
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None  # seconds, > 0


@dataclass(frozen=True)
class ContainerEdits:
    env: tuple[str, ...] = ()  # "NAME=value"
    device_nodes: tuple[DeviceNode, ...] = ()
    mounts: tuple[Mount, ...] = ()
    hooks: tuple[Hook, ...] = ()
    additional_gids: tuple[int, ...] = ()  # needs 0.7.0

    def is_empty(self) -> bool:
        return not (self.env or self.device_nodes or self.mounts or self.hooks or self.additional_gids)


@dataclass(frozen=True)
class Device:
    name: str
    container_edits: ContainerEdits
    annotations: Annotations = ()  # needs 0.6.0


@dataclass(frozen=True)
class Spec:
    """One CDI spec file: a ``kind`` (``vendor/class``), its devices and edits common to all of them."""

    kind: str
    devices: tuple[Device, ...]
    container_edits: ContainerEdits = ContainerEdits()
    annotations: Annotations = ()  # needs 0.6.0

    def __post_init__(self) -> None:
        _validate_spec(self)

    @property
    def cdi_version(self) -> str:
        return minimum_version(self)

    def device_ids(self) -> tuple[str, ...]:
        """The qualified IDs (``vendor/class=name``) of the spec's devices, in order."""
        return tuple(f"{self.kind}={device.name}" for device in self.devices)

    def to_dict(self) -> dict[str, Any]:
        return self._doc(shared=False)

    def to_json(self) -> str:
        # compact: indent= drops Python's json to its pure-Python encoder, 10x slower on a prepare's path
        return json.dumps(self._doc(shared=True), separators=(",", ":")) + "\n"

    def _doc(self, shared: bool) -> dict[str, Any]:
        """The spec as JSON data; ``shared``: long mount lists may be the remembered renderings (to be read only)."""
        doc: dict[str, Any] = {"cdiVersion": self.cdi_version, "kind": self.kind}
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        doc["devices"] = [_device_dict(device, shared) for device in self.devices]
        if not self.container_edits.is_empty():
            doc["containerEdits"] = _edits_dict(self.container_edits, shared)
        return doc


def _device_dict(device: Device, shared: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": device.name}
    if device.annotations:
        out["annotations"] = dict(device.annotations)
    out["containerEdits"] = _edits_dict(device.container_edits, shared)
    return out


def _present(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The pairs whose value is set: not None and not an empty tuple."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in pairs if value not in (None, ())}


def _edits_dict(edits: ContainerEdits, shared: bool) -> dict[str, Any]:
    mounts = _RENDERED_MOUNTS.get(edits.mounts) if shared else None
    if mounts is None:
        mounts = tuple(_mount_dict(m) for m in edits.mounts)
        if shared:
            _RENDERED_MOUNTS.put(edits.mounts, mounts)
    return _present(
        (
            ("env", edits.env),
            ("deviceNodes", tuple(_node_dict(n) for n in edits.device_nodes)),
            ("mounts", mounts),
            ("hooks", tuple(_hook_dict(h) for h in edits.hooks)),
            ("additionalGids", edits.additional_gids),
        )
    )


def _node_dict(n: DeviceNode) -> dict[str, Any]:
    return _present(
        (
            ("path", n.path),
            ("hostPath", n.host_path),
            ("type", n.type),
            ("major", n.major),
            ("minor", n.minor),
            ("fileMode", n.file_mode),
            ("permissions", n.permissions),
            ("uid", n.uid),
            ("gid", n.gid),
        )
    )


def _mount_dict(m: Mount) -> dict[str, Any]:
    return _present(
        (("hostPath", m.host_path), ("containerPath", m.container_path), ("type", m.type), ("options", m.options))
    )


def _hook_dict(h: Hook) -> dict[str, Any]:
    return _present(
        (("hookName", h.hook_name), ("path", h.path), ("args", h.args), ("env", h.env), ("timeout", h.timeout))
    )


# -- validation: what a CDI loader would refuse, refused here with the path of the field ------------------


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ConfigError(field, message)


def _check_int(value: int | None, field: str, low: int, high: int) -> None:
    _check(value is None or low <= value <= high, field, f"must be in {low}..{high}, got {value}")


def _check_path(path: str | None, field: str) -> None:
    _check(path is None or path.startswith("/"), field, f"must be an absolute path, got {path!r}")


def _check_env(env: tuple[str, ...], field: str) -> None:
    for i, item in enumerate(env):
        _check(item.find("=") > 0, f"{field}[{i}]", f"must be NAME=value, got {item!r}")


def _validate_edits(edits: ContainerEdits, field: str) -> None:
    _check_env(edits.env, f"{field}.env")
    for i, n in enumerate(edits.device_nodes):
        at = f"{field}.deviceNodes[{i}]"
        _check_path(n.path, f"{at}.path")
        _check_path(n.host_path, f"{at}.hostPath")
        _check(n.type is None or n.type in DEVICE_NODE_TYPES, f"{at}.type", f"must be one of {DEVICE_NODE_TYPES}")
        perms_ok = (
            n.permissions is None or n.permissions == "none" or (n.permissions and not n.permissions.strip("rwm"))
        )
        _check(bool(perms_ok), f"{at}.permissions", f"must be some of 'rwm' or 'none', got {n.permissions!r}")
        _check_int(n.major, f"{at}.major", 0, INT64_MAX)
        _check_int(n.minor, f"{at}.minor", 0, INT64_MAX)
        _check_int(n.file_mode, f"{at}.fileMode", 0, 0o7777)
        _check_int(n.uid, f"{at}.uid", 0, UINT32_MAX)
        _check_int(n.gid, f"{at}.gid", 0, UINT32_MAX)
    if _VALID_MOUNTS.get(edits.mounts) is None:
        for i, m in enumerate(edits.mounts):
            _check_path(m.host_path, f"{field}.mounts[{i}].hostPath")
            _check_path(m.container_path, f"{field}.mounts[{i}].containerPath")
            _check(m.type is None or bool(m.type), f"{field}.mounts[{i}].type", "must not be empty; leave it unset")
        _VALID_MOUNTS.put(edits.mounts, True)
    for i, h in enumerate(edits.hooks):
        at = f"{field}.hooks[{i}]"
        _check(h.hook_name in HOOK_NAMES, f"{at}.hookName", f"must be one of {', '.join(HOOK_NAMES)}")
        _check_path(h.path, f"{at}.path")
        _check_env(h.env, f"{at}.env")
        _check_int(h.timeout, f"{at}.timeout", 1, UINT32_MAX)
    for i, gid in enumerate(edits.additional_gids):
        _check_int(gid, f"{field}.additionalGids[{i}]", 0, UINT32_MAX)


def _validate_annotations(annotations: Annotations, field: str) -> None:
    size = 0
    for key, value in annotations:
        prefix, _, name = key.rpartition("/")
        ok = bool(_ANNOTATION_NAME.fullmatch(name)) and len(name) <= 63
        ok = ok and (not prefix or (bool(_DNS_SUBDOMAIN.fullmatch(prefix.lower())) and len(prefix) <= 253))
        _check(ok, f"{field}.{key}", "must be a Kubernetes qualified name: [prefix/]name")
        size += len(key) + len(value)
    _check(size <= ANNOTATIONS_MAX_BYTES, field, f"total size {size} exceeds {ANNOTATIONS_MAX_BYTES} bytes")


def _validate_spec(spec: Spec) -> None:
    problem = names.kind_problem(spec.kind)
    _check(problem is None, "kind", problem or "")
    _check(bool(spec.devices), "devices", "a spec needs at least one device")
    _validate_annotations(spec.annotations, "annotations")
    _validate_edits(spec.container_edits, "containerEdits")
    seen: set[str] = set()
    for i, device in enumerate(spec.devices):
        at = f"devices[{i}]"
        problem = names.device_name_problem(device.name)
        _check(problem is None, f"{at}.name", problem or "")
        _check(device.name not in seen, f"{at}.name", f"device {device.name!r} appears twice in the spec")
        seen.add(device.name)
        _check(not device.container_edits.is_empty(), f"{at}.containerEdits", "a device needs at least one edit")
        _validate_annotations(device.annotations, f"{at}.annotations")
        _validate_edits(device.container_edits, f"{at}.containerEdits")
