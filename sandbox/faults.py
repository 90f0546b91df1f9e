"""``dra-gpu sandbox fault NODE --gpu N (lost | xid CODE | none)``: inject a GPU fault into a running sandbox.

``lost``: the GPU falls off the bus (NVML reports XID 79, then answers GPU_IS_LOST for it): its devices are no
longer published. ``xid CODE``: the driver reports that XID for the GPU (NVML event API): the plugin taints the
GPU's devices (kubelet_plugin/gpu_health.py). ``none``: the fault is cleared and pending events dropped; the
taint goes after the plugin's quiet period. Exit 0 when injected, 2 for a bad node, GPU or code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nvml_sim.control import InvalidRequest, SimulatedMachine
from sandbox.layout import Layout, default_workdir

KINDS = ("lost", "xid", "none")


def sandbox_fault(node: str, gpu: int, kind: str, code: int | None = None, workdir: Path | None = None) -> int:
    layout = Layout((workdir or default_workdir()).resolve())
    # with --driver helm both exist: the chart's plugin reads its own (the other only numbers the device nodes)
    machine_file = next((f for f in (layout.chart_machine_file(node), layout.machine_file(node)) if f.exists()), None)
    if machine_file is None:
        nodes = sorted(
            n.name
            for n in layout.nodes.glob("*")
            if layout.machine_file(n.name).exists() or layout.chart_machine_file(n.name).exists()
        )
        print(
            f"NODE: {node!r} has no simulated GPUs in {layout.root}; nodes with GPUs: {', '.join(nodes) or 'none'}",
            file=sys.stderr,
        )
        return 2
    if kind == "xid" and code is None:
        print("xid needs its CODE, e.g. dra-gpu sandbox fault NODE --gpu 0 xid 79", file=sys.stderr)
        return 2
    machine = SimulatedMachine(machine_file)
    try:
        if kind == "lost":
            machine.set_fault(gpu, "lost")
        elif kind == "xid":
            assert code is not None
            machine.inject_xid(gpu, code)
        elif kind == "none":
            machine.set_fault(gpu, None)
            machine.clear_events(gpu)
        else:
            print(f"fault: {kind!r} is not one of {', '.join(KINDS)}", file=sys.stderr)
            return 2
    except InvalidRequest as exc:
        print(f"--gpu / CODE: {exc}", file=sys.stderr)
        return 2
    print(f"{node} GPU {gpu}: {kind}{f' {code}' if code is not None else ''}")
    return 0
