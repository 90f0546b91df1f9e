"""Does a device match a request: class selectors, request selectors, per-device node selection. Pure.

Errors are reported in kube-scheduler's words (``class X: selector #0 on device d/p/n: CEL runtime error:
…``); in the scheduler any of them aborts the scheduling attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dra_driver.cel import CelCompileError, CelEvalError, compile_selector
from dra_driver.errors import ConfigError
from dra_driver.structured.model import Claim, Device, DeviceClass, DeviceId, DeviceRequest, Node, Slice
from dra_driver.structured.nodeselect import node_matches


class SelectionError(Exception):
    """A selector cannot be evaluated for a device; ``str()`` is the scheduler's message."""


def _all_match(selectors: Sequence[str | None], device: Device, device_id: DeviceId, owner: Callable[[], str]) -> bool:
    """Every selector matches; ``owner`` names whose selectors they are, for an error (built only then)."""
    for i, expression in enumerate(selectors):
        if expression is None:
            raise SelectionError(f"{owner()}: selector #{i}: CEL expression empty (unsupported selector type?)")
        try:
            if not device.matches(compile_selector(expression)):
                return False
        except CelCompileError as e:
            raise SelectionError(f"{owner()}: selector #{i}: CEL compile error: {e.message}") from e
        except CelEvalError as e:
            raise SelectionError(
                f"{owner()}: selector #{i} on device {device_id}: CEL runtime error: {e.message}"
            ) from e
    return True


def device_matches(
    claim: Claim,
    device_class: DeviceClass | None,
    request: DeviceRequest,
    slice_: Slice,
    device: Device,
    device_id: DeviceId,
    node: Node,
) -> bool:
    """``isSelectable``: class selectors, then request selectors, then the device's own node selection."""
    if (
        device_class is not None
        and device_class.selectors
        and not _all_match(device_class.selectors, device, device_id, lambda: f"class {device_class.name}")
    ):
        return False
    if request.selectors and not _all_match(request.selectors, device, device_id, lambda: f"claim {claim.key}"):
        return False
    if slice_.node.per_device:
        try:
            return device.node is not None and node_matches(node, device.node)
        except ConfigError as e:
            raise SelectionError(f"device {device_id}: {e}") from e
    return True
