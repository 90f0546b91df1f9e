"""``dra-gpu explain -f FILE``: API objects from YAML files, answered as the API server would answer the reads
``controller.explain.analysis.read_inputs`` makes (GET one namespaced object, LIST a collection, unbound pods by field selector).

Kinds read: Node, Pod, ResourceClaim, ResourceClaimTemplate, ResourceSlice, DeviceClass, NodeGpuModes (and
``*List`` documents of them). Without DeviceClasses the driver's shipped classes are used, as ``dra-gpu plan`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from api import gpumodes
from api.config import strict
from dra_driver.classes import device_classes
from dra_driver.errors import FatalError
from dra_driver.resourceslice.capabilities import Capabilities

Obj = Mapping[str, Any]
PLURALS = {
    "Node": "nodes",
    "Pod": "pods",
    "ResourceClaim": "resourceclaims",
    "ResourceClaimTemplate": "resourceclaimtemplates",
    "ResourceSlice": "resourceslices",
    "DeviceClass": "deviceclasses",
    gpumodes.KIND: gpumodes.PLURAL,
}
NAMESPACED = {"pods", "resourceclaims", "resourceclaimtemplates"}
UNBOUND = "spec.nodeName="


class FileKube:
    def __init__(self, objects: Sequence[Obj], notes: Sequence[str] = ()) -> None:
        self.by_plural: dict[str, list[Obj]] = {p: [] for p in PLURALS.values()}
        for obj in objects:
            self.by_plural[PLURALS[str(obj.get("kind"))]].append(obj)
        self.notes = tuple(notes)

    def get(self, path: str) -> Obj | None:
        parts = path.strip("/").split("/")
        if "namespaces" not in parts or len(parts) < parts.index("namespaces") + 4:
            raise FatalError(f"explain -f cannot answer GET {path}")
        i = parts.index("namespaces")
        ns, plural, name = parts[i + 1], parts[i + 2], parts[i + 3]
        return next((o for o in self.by_plural.get(plural, ()) if _ns_name(o) == (ns, name)), None)

    def list(self, path: str, **query: str) -> list[Any]:
        plural = path.rstrip("/").rsplit("/", 1)[-1]
        if plural not in self.by_plural or set(query) - {"fieldSelector"}:
            raise FatalError(f"explain -f cannot answer LIST {path} {query or ''}".rstrip())
        found = list(self.by_plural[plural])
        selector = query.get("fieldSelector")
        if selector is not None and selector != UNBOUND:
            raise FatalError(f"explain -f cannot answer the field selector {selector!r}")
        if selector == UNBOUND:
            found = [o for o in found if not (o.get("spec") or {}).get("nodeName")]
        return found


def _ns_name(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name"))


def load(paths: Sequence[Path], driver: str, caps: Capabilities) -> FileKube:
    """Objects of ``paths``; a document of another kind is an error naming the file, the document and the kinds."""
    objects: list[Obj] = []
    for path in paths:
        try:
            docs = strict.load_yaml_documents(path.read_text())
        except OSError as exc:
            raise FatalError(f"{path}: cannot read: {exc.strerror}") from exc
        for i, doc in enumerate(docs):
            kind = doc.get("kind", "") if isinstance(doc, dict) else ""
            items = doc.get("items") or [] if isinstance(doc, dict) and kind.endswith("List") else [doc]
            for obj in items:
                kind = obj.get("kind") if isinstance(obj, dict) else None
                if kind not in PLURALS:
                    raise FatalError(f"{path}: document {i + 1}: kind {kind!r} is not one of {', '.join(PLURALS)}")
                if not isinstance(obj.get("metadata"), dict) or not obj["metadata"].get("name"):
                    raise FatalError(f"{path}: document {i + 1}: {kind} has no metadata.name")
                objects.append(obj)
    notes = []
    if not any(o.get("kind") == "DeviceClass" for o in objects):
        objects += [{"kind": "DeviceClass", **c} for c in device_classes(driver, caps)]
        notes.append("no DeviceClasses given: using the driver's shipped classes")
    return FileKube(objects, notes)
