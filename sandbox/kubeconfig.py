"""Kubeconfig files for the sandbox's clients (certificates embedded, so a file can be copied anywhere)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from sandbox.atomic import write_atomic
from sandbox.pki import ClientIdentity, Pki

CLUSTER_NAME = "dra-sandbox"


def kubeconfig_document(server: str, pki: Pki, identity: ClientIdentity) -> dict[str, object]:
    """A kubeconfig with one cluster, one user and one current context."""
    user = identity.file_stem
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": _b64(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pki.client_cert(identity)),
                    "client-key-data": _b64(pki.client_key(identity)),
                },
            }
        ],
        "contexts": [{"name": f"{user}@{CLUSTER_NAME}", "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": f"{user}@{CLUSTER_NAME}",
    }


def write_kubeconfig(path: Path, server: str, pki: Pki, identity: ClientIdentity) -> Path:
    text = yaml.safe_dump(kubeconfig_document(server, pki, identity), sort_keys=False)
    write_atomic(path, text.encode(), 0o600)
    return path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
