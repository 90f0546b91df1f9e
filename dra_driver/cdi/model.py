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
from collections.abc import Callable
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


class _Shared:
    """Tuples of device nodes or mounts that many specs hold as they are (``share``: a node's driver files, in
    every claim's spec), by identity, each with its rendering as JSON text: validated once, when shared, and
    copied into each spec's JSON as text instead of being rendered again. Each tuple is kept with its text, so
    its id cannot be reused while it is remembered; the oldest are forgotten first."""

    SIZE = 32

    def __init__(self) -> None:
        self._items: dict[int, tuple[tuple[Any, ...], str]] = {}
        self._lock = threading.Lock()

    def text(self, key: tuple[Any, ...]) -> str | None:
        entry = self._items.get(id(key))
        return entry[1] if entry is not None and entry[0] is key else None

    def put(self, key: tuple[Any, ...], text: str) -> None:
        with self._lock:
            if len(self._items) >= self.SIZE:
                del self._items[next(iter(self._items))]
            self._items[id(key)] = (key, text)


_SHARED = _Shared()
_SHAREABLE = ("deviceNodes", "mounts")  # the fields whose tuples ``share`` remembers


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
        doc: dict[str, Any] = self._head()
        doc["devices"] = [_device_dict(device) for device in self.devices]
        if not self.container_edits.is_empty():
            doc["containerEdits"] = _edits_dict(self.container_edits)
        return doc

    def to_json(self) -> str:
        """``to_dict()`` as compact JSON (``indent=`` drops Python's json to its pure-Python encoder, 10x slower on
        a prepare's path), with shared device nodes and mounts copied in as the text rendered when shared."""
        text = _dumps(self._head())[:-1] + ',"devices":[' + ",".join(_device_json(d) for d in self.devices) + "]"
        if not self.container_edits.is_empty():
            text += ',"containerEdits":' + _edits_json(self.container_edits)
        return text + "}\n"

    def _head(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"cdiVersion": self.cdi_version, "kind": self.kind}
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc


def share(edits: ContainerEdits) -> ContainerEdits:
    """``edits``, validated now, with its device nodes and mounts remembered for the specs that hold those very
    tuples (``_Shared``): for edits made once and put in many specs. ``ConfigError`` when they are invalid."""
    _validate_edits(edits, "containerEdits")
    for key, value, render in _edit_fields(edits):
        if key in _SHAREABLE and value:
            _SHARED.put(value, _dumps(_rendered(value, render)))
    return edits


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _device_head(device: Device) -> dict[str, Any]:
    out: dict[str, Any] = {"name": device.name}
    if device.annotations:
        out["annotations"] = dict(device.annotations)
    return out


def _device_dict(device: Device) -> dict[str, Any]:
    return _device_head(device) | {"containerEdits": _edits_dict(device.container_edits)}


def _device_json(device: Device) -> str:
    return _dumps(_device_head(device))[:-1] + ',"containerEdits":' + _edits_json(device.container_edits) + "}"


def _present(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The pairs whose value is set: not None and not an empty tuple."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in pairs if value not in (None, ())}


def _edits_dict(edits: ContainerEdits) -> dict[str, Any]:
    return {key: _rendered(value, render) for key, value, render in _edit_fields(edits) if value}


def _edits_json(edits: ContainerEdits) -> str:
    items = []
    for key, value, render in _edit_fields(edits):
        if value:
            text = _SHARED.text(value) if key in _SHAREABLE else None
            items.append(f'"{key}":{_dumps(_rendered(value, render)) if text is None else text}')
    return "{" + ",".join(items) + "}"


def _edit_fields(edits: ContainerEdits) -> tuple[tuple[str, tuple[Any, ...], Callable[[Any], Any] | None], ...]:
    """Each field's JSON key, value and the rendering of one of its items (None: as it is), in the JSON's order."""
    return (
        ("env", edits.env, None),
        ("deviceNodes", edits.device_nodes, _node_dict),
        ("mounts", edits.mounts, _mount_dict),
        ("hooks", edits.hooks, _hook_dict),
        ("additionalGids", edits.additional_gids, None),
    )


def _rendered(value: tuple[Any, ...], render: Callable[[Any], Any] | None) -> list[Any]:
    return list(value) if render is None else [render(item) for item in value]


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


def _node_problem(n: DeviceNode) -> tuple[str, str] | None:
    """The first field of ``n`` a CDI loader would refuse, and why; None when it has none."""
    for key, path in (("path", n.path), ("hostPath", n.host_path)):
        if path is not None and not path.startswith("/"):
            return key, f"must be an absolute path, got {path!r}"
    if n.type is not None and n.type not in DEVICE_NODE_TYPES:
        return "type", f"must be one of {DEVICE_NODE_TYPES}"
    if n.permissions is not None and n.permissions != "none" and (not n.permissions or n.permissions.strip("rwm")):
        return "permissions", f"must be some of 'rwm' or 'none', got {n.permissions!r}"
    limits = (("major", n.major, INT64_MAX), ("minor", n.minor, INT64_MAX), ("fileMode", n.file_mode, 0o7777))
    for key, value, high in (*limits, ("uid", n.uid, UINT32_MAX), ("gid", n.gid, UINT32_MAX)):
        if value is not None and not 0 <= value <= high:
            return key, f"must be in 0..{high}, got {value}"
    return None


def _validate_edits(edits: ContainerEdits, field: str) -> None:
    _check_env(edits.env, f"{field}.env")
    if _SHARED.text(edits.device_nodes) is None:
        for i, n in enumerate(edits.device_nodes):
            if (problem := _node_problem(n)) is not None:
                raise ConfigError(f"{field}.deviceNodes[{i}].{problem[0]}", problem[1])
    if _SHARED.text(edits.mounts) is None:
        for i, m in enumerate(edits.mounts):
            _check_path(m.host_path, f"{field}.mounts[{i}].hostPath")
            _check_path(m.container_path, f"{field}.mounts[{i}].containerPath")
            _check(m.type is None or bool(m.type), f"{field}.mounts[{i}].type", "must not be empty; leave it unset")
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
