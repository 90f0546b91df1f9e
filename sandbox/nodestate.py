"""Node state: what a sandbox leaves in ``<workdir>/nodes/<node>/`` when its processes are gone — the simulated
GPUs (``machine.json``, MIG partitions included), the plugin's checkpoint (``state/``), CDI specs (``cdi/``) and
sockets.

``up`` reuses a node's state only when it holds a simulated machine of the same profile made for the same node
(what ``down --keep-state`` leaves); any other node directory is discarded before the agents start, so a sandbox
never comes up with another profile's GPUs or with claims recorded by an earlier one. ``down`` removes it all.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from nvml_sim.control import SimulatedMachine
from sandbox.layout import Layout


def machine_owner(machine_file: Path) -> tuple[str, str] | None:
    """(profile, host) of the simulated machine in ``machine_file``; None when there is none or it is unreadable."""
    try:
        state = SimulatedMachine(machine_file).state()
        return str(state["profile"]), str(state["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep_only(layout: Layout, nodes: Sequence[str], profile: str) -> list[str]:
    """Discard every node directory except those of ``nodes`` holding a ``profile`` machine made for that node.

    Returns one line per directory discarded, saying what it held.
    """
    if not layout.nodes.is_dir():
        return []
    notes = []
    for root in sorted(layout.nodes.iterdir()):
        owner = machine_owner(layout.machine_file(root.name))
        if profile and root.name in nodes and owner == (profile, root.name):
            continue
        held = f"simulated {owner[0]} machine of {owner[1]}" if owner else "no simulated machine"
        if root.is_dir():
            shutil.rmtree(root)
        else:
            root.unlink()
        notes.append(f"discarded stale node state {root} ({held}); this sandbox runs profile {profile or 'none'}")
    return notes


def remove(layout: Layout) -> bool:
    """Remove every node's state and the partitioning file; True when there was something to remove."""
    found = layout.nodes.exists() or layout.partitioning_file.exists()
    if layout.nodes.exists():
        shutil.rmtree(layout.nodes)
    layout.partitioning_file.unlink(missing_ok=True)
    return found
