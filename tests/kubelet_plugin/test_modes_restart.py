"""A plugin killed in the middle of a GPU mode change: the next one keeps the GPU unpublished until the change is
finished (``gpumodes-changing.json``), so a half-made MIG layout is never offered to the scheduler."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dra_driver.nvml import mig
from kubelet_plugin.modes_state import CHANGING_FILE, load_changing
from kubelet_plugin.modes_watch import INTERRUPTED, GpuModesWatch
from tests.kubelet_plugin.test_modes_watch import Node, node

__all__ = ["node"]  # the fixture, shared with test_modes_watch.py
LAYOUT = ["3g.20gb", "2g.10gb", "1g.5gb"]


class Killed(BaseException):
    """The plugin process dying: nothing after it runs, no rollback."""


def _killed_half_way(n: Node, uuid: str) -> None:
    """Start a static layout on GPU 0 and die after its first instance."""
    watch = n.make_watch()
    first = True

    def create_layout(gpu_index: int, layout: tuple[tuple[str, int], ...]) -> None:
        nonlocal first
        profile, start = layout[0]
        mig.create_partition(n.nvml, gpu_index, profile, start)
        if first:
            first = False
            raise Killed

    watch.hardware.create_layout = create_layout  # type: ignore[method-assign]
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": LAYOUT})
    with pytest.raises(Killed):
        watch.reconcile()
    assert len(n.sim.mig_partitions()) == 1  # half made
    assert load_changing(n.state_dir / CHANGING_FILE) == {uuid}


def _restarted(n: Node) -> GpuModesWatch:
    return n.make_watch()  # a new watch on the same state directory and machine


def test_an_interrupted_layout_stays_unpublished_until_the_restarted_plugin_finishes_it(
    node: Callable[..., Node],
) -> None:
    n = node("dgx-a100")
    n.rescan()
    uuid = n.gpu(0).uuid
    _killed_half_way(n, uuid)
    watch = _restarted(n)
    assert watch.draining() == {uuid}  # before anything is published again
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": LAYOUT})
    assert watch.reconcile() is False
    assert n.gpu_state(uuid)[:2] == ("mig", "Applied")
    assert sorted(d.profile for d in n.gpu(0).mig_devices) == sorted(LAYOUT)  # exactly, the half-made one cleared
    assert watch.draining() == frozenset() and n.published[-1] == frozenset()
    assert load_changing(n.state_dir / CHANGING_FILE) == set()


def test_an_interrupted_gpu_whose_new_spec_is_refused_stays_unpublished_and_says_why(
    node: Callable[..., Node],
) -> None:
    n = node("dgx-a100")
    n.rescan()
    uuid = n.gpu(0).uuid
    _killed_half_way(n, uuid)
    watch = _restarted(n)
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": ["7g.40gb", "1g.5gb"]}, generation=2)
    watch.reconcile()
    _, state, reason = n.gpu_state(uuid)
    assert state == "Refused" and reason is not None and reason.endswith(f"; {INTERRUPTED}")
    assert watch.draining() == {uuid}


def test_a_change_that_completes_leaves_no_mark(node: Callable[..., Node]) -> None:
    n = node("dgx-a100")
    watch = n.make_watch()
    uuid = n.gpu(1).uuid
    n.desire({"uuid": uuid, "mode": "mig", "migLayout": LAYOUT})
    watch.reconcile()
    assert n.gpu_state(uuid)[:2] == ("mig", "Applied")
    assert load_changing(n.state_dir / CHANGING_FILE) == set()
    assert _restarted(n).draining() == frozenset()
