"""A ClusterState's ResourceSlices by node name and by pool, built once per state (``ClusterState.index``).

``gather_pools`` for one node then reads only the slices naming that node and the slices naming none
(selector, all nodes, per-device selection), as kube-scheduler's slice tracker does, instead of filtering
every slice of the cluster. Slices keep their input order (it decides the order of slices with equal
names). The index also remembers the pools built from a given set of visible slices, so nodes and calls
that see the same slices share one ``Pool``. Slices are immutable, so none of this can go stale.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dra_driver.structured.model import PoolId, Slice
    from dra_driver.structured.pools import Pool

_Indexed = list[tuple[int, "Slice"]]  # (position in the input, slice)


class SliceIndex:
    def __init__(self, slices: Sequence[Slice]) -> None:
        self._by_node: dict[str, _Indexed] = {}
        self._unnamed: _Indexed = []
        by_pool: dict[PoolId, list[Slice]] = {}
        for position, slice_ in enumerate(slices):
            name = slice_.node.node_name
            (self._by_node.setdefault(name, []) if name else self._unnamed).append((position, slice_))
            by_pool.setdefault(slice_.pool_id, []).append(slice_)
        self._by_pool = {pool_id: tuple(members) for pool_id, members in by_pool.items()}
        # gather_pools' memo: the slices of one pool a node sees (they compare by identity) -> the Pool, or
        # None when a newer generation replaces it
        self.pools: dict[tuple[Slice, ...], Pool | None] = {}

    def candidates(self, node_name: str) -> list[Slice]:
        """Slices with ``nodeName`` equal to ``node_name`` or without ``nodeName``, in input order."""
        named = self._by_node.get(node_name)
        if not self._unnamed or not named:
            return [s for _, s in named or self._unnamed]
        return [s for _, s in heapq.merge(named, self._unnamed, key=itemgetter(0))]

    def pool(self, pool_id: PoolId) -> tuple[Slice, ...]:
        """Every slice of the pool, whichever nodes it names, in input order."""
        return self._by_pool.get(pool_id, ())
