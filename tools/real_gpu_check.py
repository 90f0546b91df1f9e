"""Check a GPU node end to end without changing it: ``python -m tools.real_gpu_check [--json]``.

On a host with an NVIDIA driver (run as root, from a checkout with the project's environment)::

    sudo .venv/bin/python -m tools.real_gpu_check --driver-root / [--gpu INDEX] [--json]

1. finds the driver's files under ``--driver-root`` (``dra_driver.driver_root``) and loads *that* NVML;
2. discovers the GPUs (``dra_driver.nvml.discovery``: NVML queries only) and renders the ResourceSlices the
   plugin would publish (``whole`` mode; ``mig`` for a GPU with MIG enabled), publishing nothing;
3. allocates one device on paper: GPU ``--gpu`` (default: the first) as a whole GPU, or, where MIG is enabled, its
   first existing MIG device (never a new one), planned by the plugin's own ``kubelet_plugin.plan``;
4. builds that claim's CDI spec with the plugin's ``kubelet_plugin.cdi_specs`` from the real driver root and checks
   that every file it mounts and every device node exists;
5. runs ``nvidia-smi -L`` in a process that has only the spec's edits (``tools.real_gpu_check_root``: a private
   mount namespace, a minimal busybox root, ``chroot``) and checks that it lists exactly the allocated device.

It is read-only: NVML is only queried (no MIG mode or layout, clocks, compute mode or persistence mode is set,
nothing is reset), nothing is published, the spec is not written to the CDI directory, and what it mounts exists
only inside the namespace. Exit code 0: every step passed; 1: a step failed (the report says which); 2: it could
not run (no driver, not root, a bad argument).

``--simulated STATE`` runs the same code on a simulated machine (``dra-gpu sim env STATE`` sets NVML up; the
driver root is one ``nvml_sim.driver_install`` made, ``--dev-root`` a directory of stand-in device nodes): the
state file is also bound into the namespace, read-only, as the stand-in ``nvidia-smi`` reads the machine from it.
This module never imports the simulator; docs/real-gpu.md shows both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from api.partitioning import Mig, Whole
from dra_driver import errors
from dra_driver.classes import DEFAULT_DRIVER
from dra_driver.driver_root import DriverFiles, discover_driver_files
from dra_driver.inventory import Gpu, Inventory
from dra_driver.kubeletplugin.protocol import ClaimRef
from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from dra_driver.resourceslice.capabilities import Capabilities
from dra_driver.resourceslice.render import render
from dra_driver.slices.builder import build_pool
from dra_driver.slices.devices import mig_name, whole_name
from kubelet_plugin.cdi_specs import claim_spec, device_uuid, driver_edits, read_mig_minors
from kubelet_plugin.plan import ClaimRejected, Context, plan_claim
from tools import real_gpu_check_root as ns

CLAIM = ClaimRef("default", "00000000-0000-4000-8000-00000000c0de", "real-gpu-check")
_UUID = re.compile(r"\(UUID: ((?:GPU|MIG)-[0-9A-Za-z-]+)\)")


class CheckFailed(Exception):
    """A step found something wrong (not an environment problem)."""


@dataclass
class Report:
    driver_root: str
    ok: bool = False
    failed_step: str | None = None
    error: str | None = None
    driver_version: str | None = None
    files: dict[str, int] = field(default_factory=dict)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    slices: dict[str, Any] = field(default_factory=dict)
    allocated: dict[str, str] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    listed: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)


def _pick(inv: Inventory, index: int | None) -> Gpu:
    if not inv.gpus:
        raise CheckFailed(f"NVML found no healthy GPU ({len(inv.unhealthy)} unhealthy)")
    gpu = inv.gpus[0] if index is None else next((g for g in inv.gpus if g.index == index), None)
    if gpu is None:
        raise CheckFailed(f"--gpu {index}: no healthy GPU with that index ({[g.index for g in inv.gpus]} exist)")
    if gpu.mig_enabled and not gpu.mig_devices:
        raise CheckFailed(
            f"GPU {gpu.index} has MIG enabled and no MIG devices; this check never creates them: choose a GPU "
            "with MIG disabled (--gpu) or create a MIG device first"
        )
    return gpu


def _claim(driver: str, node: str, device: str) -> dict[str, Any]:
    result = {"request": "gpu", "driver": driver, "pool": node, "device": device}
    return {
        "metadata": {"uid": CLAIM.uid, "namespace": CLAIM.namespace, "name": CLAIM.name},
        "status": {"allocation": {"devices": {"results": [result], "config": []}}},
    }


def _discover(report: Report, root: Path, sysfs_root: Path) -> tuple[DriverFiles, Inventory]:
    files = discover_driver_files(root)
    with Nvml(files.nvml_library) as nvml:
        inv = discover(nvml, sysfs_root)
    if inv.driver_version != files.version:
        files = discover_driver_files(root, version=inv.driver_version)
    report.driver_version = inv.driver_version
    report.files = {"libraries": len(files.libraries), "binaries": len(files.binaries), "firmware": len(files.firmware)}
    report.gpus = [
        {"index": g.index, "minor": g.minor, "uuid": g.uuid, "product": g.product_name, "mig": g.mig_enabled}
        for g in inv.gpus
    ]
    return files, inv


def check(args: argparse.Namespace, report: Report) -> None:
    """Every step, filling ``report``; ``CheckFailed`` at the first that fails."""
    report.failed_step = "discovery"
    files, inv = _discover(report, args.driver_root, args.sysfs_root)
    gpu = _pick(inv, args.gpu)

    report.failed_step = "slices"
    modes = {g.index: Mig() if g.mig_enabled else Whole() for g in inv.gpus}
    pool = build_pool(inv, modes, Capabilities(), args.driver, args.node)
    objs = render(pool, 1, "v1")
    names = [d.name for d in pool.devices()]
    report.slices = {"objects": len(objs), "devices": len(names), "notes": list(pool.notes)}
    mig = gpu.mig_devices[0] if gpu.mig_enabled else None
    device = whole_name(gpu) if mig is None else mig_name(gpu, mig.profile, mig.placement.start)
    if device not in names:
        raise CheckFailed(f"device {device} of GPU {gpu.index} is not in the rendered slices")

    report.failed_step = "plan"
    ctx = Context(args.driver, args.node, inv, "/run/dra-gpu-check/mps", dynamic_mig=False)
    try:
        records = plan_claim(ctx, CLAIM, _claim(args.driver, args.node, device), [])
    except ClaimRejected as exc:
        raise CheckFailed(f"the plugin's planner refuses {device}: {exc}") from exc
    report.allocated = {"device": device, "gpu": gpu.uuid, "uuid": device_uuid(records[0])}

    report.failed_step = "cdi spec"
    spec = claim_spec(
        args.driver, CLAIM.uid, records, {g.index: g.minor for g in inv.gpus}, read_mig_minors(), driver_edits(files)
    )
    edits = ns.spec_edits(spec, spec.devices[0].name)
    binds = ns.spec_binds(edits, args.dev_root)
    report.spec = {
        "id": spec.device_ids()[0],
        "cdiVersion": spec.cdi_version,
        "env": list(edits.env),
        "deviceNodes": [n.path for n in edits.device_nodes],
        "mounts": len(edits.mounts),
    }
    report.missing = ns.missing_sources(binds)
    if report.missing:
        raise CheckFailed(f"{len(report.missing)} file(s) of the CDI spec do not exist: {report.missing[:5]}")

    report.failed_step = "nvidia-smi -L"
    program = next((b.source for b in binds if b.target == "/usr/local/nvidia/bin/nvidia-smi"), None)
    if program is None:
        raise CheckFailed(f"the driver root {args.driver_root} has no nvidia-smi (usr/bin or bin)")
    binds = ns.base_binds() + ns.image_binds(program) + binds
    env = [*edits.env, f"PATH={ns.IMAGE_PATH}"]
    if args.simulated is not None:
        state = str(args.simulated.resolve())
        binds.append(ns.Bind(state, state, True, "simulation"))
        env.append(f"DRA_SIM_NVML_STATE={state}")
    ran = ns.run_in_root(binds, env, ["nvidia-smi", "-L"], args.work_dir)
    report.run = {
        "argv": list(ran.argv),
        "exitCode": ran.returncode,
        "output": ran.output.splitlines(),
        "binds": [asdict(b) for b in ran.binds],
    }
    report.listed = _UUID.findall(ran.output)
    report.expected = sorted({gpu.uuid, report.allocated["uuid"]})
    if ran.returncode != 0:
        raise CheckFailed(f"nvidia-smi -L in the namespace exited {ran.returncode}: {ran.output.strip()[-300:]}")
    if sorted(report.listed) != report.expected:
        raise CheckFailed(f"nvidia-smi -L lists {report.listed}, the claim was given {report.expected}")
    report.failed_step = None
    report.ok = True


def render_text(r: Report) -> str:
    lines = [f"driver root {r.driver_root}: driver {r.driver_version or '?'}, files {r.files}"]
    lines += [f"  GPU {g['index']} (minor {g['minor']}) {g['product']} {g['uuid']} mig={g['mig']}" for g in r.gpus]
    if r.slices:
        lines.append(f"slices: {r.slices['objects']} ResourceSlice(s), {r.slices['devices']} device(s)")
        lines += [f"  note: {n}" for n in r.slices["notes"]]
    if r.allocated:
        lines.append(f"allocated: {r.allocated['device']} -> {r.allocated['uuid']}")
    if r.spec:
        lines.append(
            f"CDI spec: {r.spec['id']} (cdiVersion {r.spec['cdiVersion']}), {r.spec['mounts']} mounts, "
            f"device nodes {r.spec['deviceNodes']}"
        )
        lines += [f"  env {e}" for e in r.spec["env"]]
    lines += [f"  MISSING {m}" for m in r.missing]
    if r.run:
        kinds: dict[str, int] = {}
        for b in r.run["binds"]:
            kinds[b["kind"]] = kinds.get(b["kind"], 0) + 1
        lines.append(
            f"ran {' '.join(r.run['argv'])} with only the spec's edits (binds {kinds}): exit {r.run['exitCode']}"
        )
        lines += [f"  | {line}" for line in r.run["output"]]
        lines.append(f"listed {r.listed}; expected {r.expected}")
    lines.append("RESULT: OK" if r.ok else f"RESULT: FAILED at {r.failed_step}: {r.error}")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.real_gpu_check", description=__doc__.split("\n", 1)[0])
    p.add_argument("--driver-root", type=Path, default=Path("/"), help="where the NVIDIA driver is installed")
    p.add_argument("--dev-root", type=Path, default=Path("/dev"), help="where the driver's device nodes are")
    p.add_argument("--sysfs-root", type=Path, default=Path("/sys"))
    p.add_argument("--gpu", type=int, help="index of the GPU to allocate (default: the first)")
    p.add_argument("--driver", default=DEFAULT_DRIVER, help="driver name (as in the slices)")
    p.add_argument("--node", default=socket.gethostname(), help="node (pool) name")
    p.add_argument("--work-dir", type=Path, help="where the namespace's mount point is made (default: TMPDIR)")
    p.add_argument("--simulated", type=Path, metavar="STATE", help="a simulated machine's state file (tests)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = Report(str(args.driver_root))
    code = 0
    try:
        check(args, report)
    except CheckFailed as exc:
        report.error, code = str(exc), 1
    except (errors.DriverError, ns.RootError, OSError) as exc:
        report.error, code = f"cannot run the check: {exc}", 2
    sys.stdout.write(json.dumps(asdict(report), indent=2) + "\n" if args.json else render_text(report))
    return code


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
