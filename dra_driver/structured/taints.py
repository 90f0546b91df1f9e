"""Device taints against request tolerations (``ToleratesTaint``, ``taintPreventsAllocation``). Pure.

Only the effects NoSchedule and NoExecute keep a device from being allocated; None and unknown effects
are ignored. A toleration matches when its effect is empty or equal, its key empty or equal, and its
operator is Exists or (Equal, the default) with an equal value.
"""

from __future__ import annotations

from collections.abc import Iterable

from dra_driver.structured.model import Taint, Toleration

BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    match toleration.operator:
        case "" | "Equal":
            return toleration.value == taint.value
        case "Exists":
            return True
    return False


def untolerated(taints: Iterable[Taint], tolerations: Iterable[Toleration]) -> tuple[Taint, ...]:
    """The taints that keep the device from this request (empty: allocatable as far as taints go)."""
    tolerations = tuple(tolerations)
    return tuple(
        t for t in taints if t.effect in BLOCKING_EFFECTS and not any(tolerates(tol, t) for tol in tolerations)
    )
