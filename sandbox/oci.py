"""OCI image-layout archives, built in memory and reproducibly (pure: no I/O).

An image here is one uncompressed layer (``application/vnd.oci.image.layer.v1.tar``) and a config. The
archive is a tar of an OCI image layout (image-spec v1.1: ``oci-layout``, ``index.json``,
``blobs/sha256/<hex>``) whose index names the manifest with ``org.opencontainers.image.ref.name`` (the
tag) and ``io.containerd.image.name`` (the full reference), so ``ctr -n k8s.io images import <archive>``
stores the image under its reference.

Same input, same bytes: tar entries sorted, mtime 0, uid/gid 0, no user or group names, ustar headers;
JSON with sorted keys and no spaces.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

LAYOUT_VERSION = "1.0.0"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class File:
    path: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Dir:
    path: str
    mode: int = 0o755


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str


Entry = File | Dir | Symlink


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _info(entry: Entry) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(entry.path)
    match entry:
        case File(data=data, mode=mode):
            info.type, info.mode, info.size = tarfile.REGTYPE, mode, len(data)
            payload: bytes | None = data
        case Dir(mode=mode):
            info.type, info.mode = tarfile.DIRTYPE, mode
            payload = None
        case Symlink(target=target):
            info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, target
            payload = None
        case _:
            assert_never(entry)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info, payload


def tar(entries: Iterable[Entry]) -> bytes:
    """A reproducible tar of ``entries`` (relative paths, sorted here; a path may appear once)."""
    ordered = sorted(entries, key=lambda e: e.path)
    paths = [e.path for e in ordered]
    if len(set(paths)) != len(paths):
        raise ValueError(f"duplicate paths in a layer: {sorted({p for p in paths if paths.count(p) > 1})}")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for entry in ordered:
            if entry.path.startswith("/") or not entry.path:
                raise ValueError(f"layer path {entry.path!r} must be relative")
            info, payload = _info(entry)
            archive.addfile(info, None if payload is None else io.BytesIO(payload))
    return out.getvalue()


def tag_of(ref: str) -> str:
    """``sandbox.local/busybox:latest`` -> ``latest`` (a port in the registry part is no tag)."""
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        raise ValueError(f"image reference {ref!r} has no tag")
    return last.rsplit(":", 1)[1]


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(blob), "size": len(blob)}


def image_archive(
    ref: str, layer: bytes, config: Mapping[str, Any], platform: Platform = Platform()
) -> tuple[bytes, str]:
    """The OCI-layout archive of a one-layer image, and its manifest digest.

    ``config`` is the image config's ``config`` object (``Entrypoint``, ``Cmd``, ``Env``, ...)."""
    config_blob = canonical_json(
        {
            "architecture": platform.architecture,
            "os": platform.os,
            "created": EPOCH,
            "config": dict(config),
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
            "history": [{"created": EPOCH, "created_by": "sandbox.images"}],
        }
    )
    manifest_blob = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": _descriptor(CONFIG, config_blob),
            "layers": [_descriptor(LAYER, layer)],
        }
    )
    manifest = _descriptor(MANIFEST, manifest_blob) | {
        "platform": {"architecture": platform.architecture, "os": platform.os},
        "annotations": {REF_NAME: tag_of(ref), CONTAINERD_NAME: ref},
    }
    index_blob = canonical_json({"schemaVersion": 2, "mediaType": INDEX, "manifests": [manifest]})
    blobs = {sha256(b).removeprefix("sha256:"): b for b in (layer, config_blob, manifest_blob)}
    entries: list[Entry] = [
        File("oci-layout", canonical_json({"imageLayoutVersion": LAYOUT_VERSION})),
        File("index.json", index_blob),
        Dir("blobs"),
        Dir("blobs/sha256"),
        *(File(f"blobs/sha256/{hex_digest}", blob) for hex_digest, blob in blobs.items()),
    ]
    return tar(entries), manifest["digest"]


def manifest_digest(index_json: bytes) -> str:
    """The digest of the one manifest an index names."""
    (manifest,) = json.loads(index_json)["manifests"]
    digest: str = manifest["digest"]
    return digest
