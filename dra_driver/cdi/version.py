"""The lowest CDI spec version that a spec's content needs. Pure.

A loader refuses a spec whose ``cdiVersion`` is below what its content needs, and older runtimes refuse
versions they do not know, so a spec declares the minimum. The rules mirror
``specs-go/version.go`` (``MinimumRequiredVersion``) of tags.cncf.io/container-device-interface:

=======  ==============================================================================
0.3.0    the earliest version loaders accept (nothing below is ever declared)
0.4.0    a mount has ``type``
0.5.0    a device name starts with a digit; a device node has ``hostPath``
0.6.0    annotations on the spec or a device; a ``.`` in the class part of ``kind``
0.7.0    ``additionalGids`` (spec or device level); any ``intelRdt`` (not modelled here)
0.8.0    no content rule (removed Go API only)
1.0.0    no content rule (moved the version logic)
1.1.0    ``netDevices``; ``intelRdt.schemata`` / ``enableMonitoring`` (neither modelled here)
=======  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dra_driver.cdi.model import ContainerEdits, Spec

EARLIEST = "0.3.0"
CURRENT = "1.1.0"
KNOWN_VERSIONS = ("0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0")


def _all_edits(spec: Spec) -> Iterator[ContainerEdits]:
    yield spec.container_edits
    for device in spec.devices:
        yield device.container_edits


def _needs_070(spec: Spec) -> bool:
    return any(edits.additional_gids for edits in _all_edits(spec))


def _needs_060(spec: Spec) -> bool:
    if spec.annotations or any(device.annotations for device in spec.devices):
        return True
    _, _, cls = spec.kind.partition("/")
    return "." in cls


def _needs_050(spec: Spec) -> bool:
    if any(device.name[:1].isdigit() for device in spec.devices):
        return True
    return any(node.host_path for edits in _all_edits(spec) for node in edits.device_nodes)


def _needs_040(spec: Spec) -> bool:
    return any(mount.type for edits in _all_edits(spec) for mount in edits.mounts)


_RULES = (("0.7.0", _needs_070), ("0.6.0", _needs_060), ("0.5.0", _needs_050), ("0.4.0", _needs_040))


def minimum_version(spec: Spec) -> str:
    """The lowest ``cdiVersion`` that ``spec`` may declare, e.g. ``"0.5.0"`` for a device named by a claim UID."""
    return next((version for version, needed in _RULES if needed(spec)), EARLIEST)
