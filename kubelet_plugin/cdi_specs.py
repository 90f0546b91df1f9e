"""The CDI spec of one prepared claim: device nodes, visible-device variables, driver files, MPS settings. Pure.

One spec per claim (kind ``<driver>/claim``), one CDI device per allocated device, named
``<claimUID>-<device>`` so no name is ever reused across claims. Spec-wide edits carry the control
device nodes, ``NVIDIA_VISIBLE_DEVICES`` / ``CUDA_VISIBLE_DEVICES`` with the UUIDs of all the claim's
devices (GPU UUIDs, or MIG UUIDs for MIG devices), and the driver's user-space files (``driver_edits``):
every library bind-mounted read-only into ``/usr/local/nvidia/lib64`` under its SONAME and its versioned
name, with ``LD_LIBRARY_PATH`` set to what NVIDIA's CUDA images set; binaries at ``/usr/local/nvidia/bin``
and ``/usr/bin``; GSP firmware at its own path (docs/cdi.md says why).

MIG devices also need ``/dev/nvidia-caps/nvidia-cap<N>`` for their GPU instance and compute instance.
``N`` comes from ``/proc/driver/nvidia-caps/mig-minors`` (lines ``gpu<m>/gi<g>/access <N>`` and
``gpu<m>/gi<g>/ci<c>/access <N>``); where that file is absent (simulated GPUs) the driver's own layout
is used: after ``config`` (1) and ``monitor`` (2), each GPU takes 135 minors, 9 per GPU instance
(its access, then 8 compute instances).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dra_driver.cdi import ContainerEdits, Device, DeviceNode, Mount, Spec, claim_device_name, share
from dra_driver.driver_root import DriverFiles, DriverLibrary
from kubelet_plugin.records import DeviceRecord, MigPartition

CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
LIBRARY_DIR = "/usr/local/nvidia/lib64"
BINARY_DIRS = ("/usr/local/nvidia/bin", "/usr/bin")  # the first is on the PATH of NVIDIA's CUDA images
LD_LIBRARY_PATH = "/usr/local/nvidia/lib:/usr/local/nvidia/lib64"  # the value NVIDIA's CUDA images set
READ_ONLY_BIND = ("ro", "nosuid", "nodev", "bind")
MINORS_PER_GPU = 135
MINORS_PER_GI = 9
FIRST_GPU_MINOR = 3


def claim_kind(driver: str) -> str:
    return f"{driver}/claim"


def parse_mig_minors(text: str) -> dict[str, int]:
    """``/proc/driver/nvidia-caps/mig-minors`` as {"gpu0/gi1/access": 12, ...}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def mig_cap_minor(minors: Mapping[str, int], gpu_minor: int, gi: int, ci: int | None = None) -> int:
    key = f"gpu{gpu_minor}/gi{gi}/access" if ci is None else f"gpu{gpu_minor}/gi{gi}/ci{ci}/access"
    if key in minors:
        return minors[key]
    base = FIRST_GPU_MINOR + gpu_minor * MINORS_PER_GPU + gi * MINORS_PER_GI
    return base if ci is None else base + 1 + ci


def read_mig_minors(proc_root: Path = Path("/proc")) -> dict[str, int]:
    path = proc_root / "driver" / "nvidia-caps" / "mig-minors"
    return parse_mig_minors(path.read_text()) if path.exists() else {}


def device_uuid(record: DeviceRecord) -> str:
    hw = record.hardware
    if isinstance(hw, MigPartition):
        assert hw.mig_uuid is not None, "MIG partition not created yet"
        return hw.mig_uuid
    return hw.gpu_uuid


def _device_edits(record: DeviceRecord, gpu_minor: int, minors: Mapping[str, int]) -> ContainerEdits:
    nodes = [DeviceNode(f"/dev/nvidia{gpu_minor}")]
    hw = record.hardware
    if isinstance(hw, MigPartition):
        assert hw.gpu_instance_id is not None and hw.compute_instance_id is not None
        gi_cap = mig_cap_minor(minors, gpu_minor, hw.gpu_instance_id)
        ci_cap = mig_cap_minor(minors, gpu_minor, hw.gpu_instance_id, hw.compute_instance_id)
        nodes += [
            DeviceNode(f"/dev/nvidia-caps/nvidia-cap{gi_cap}"),
            DeviceNode(f"/dev/nvidia-caps/nvidia-cap{ci_cap}"),
        ]
    env: list[str] = []
    mounts: list[Mount] = []
    if record.mps is not None:
        m = record.mps
        env += ["CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps", "CUDA_MPS_LOG_DIRECTORY=/tmp/nvidia-mps/log"]
        if m.active_thread_percentage is not None:
            env.append(f"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE={m.active_thread_percentage}")
        limits = [
            f"{device_uuid(record) if key == 'default' else key}={value // (1024 * 1024)}M"
            for key, value in m.pinned_memory_limits
        ]
        if limits:
            env.append(f"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT={','.join(limits)}")
        mounts.append(Mount(m.pipe_directory, "/tmp/nvidia-mps", "none", ("rbind", "rw")))
    return ContainerEdits(env=tuple(env), device_nodes=tuple(nodes), mounts=tuple(mounts))


def _library_names(lib: DriverLibrary) -> list[str]:
    """The names a library gets in the container: SONAME, versioned name, and ``libcuda.so`` for builds that
    link with ``-lcuda`` (the NVIDIA Container Toolkit creates that link too)."""
    names = [lib.soname or lib.name, lib.name]
    if lib.stem == "libcuda":
        names.append("libcuda.so")
    return list(dict.fromkeys(names))


def driver_edits(files: DriverFiles) -> ContainerEdits:
    """The edits every claim's spec carries: the control device nodes and the driver's user-space files,
    read-only, sorted by container path. Shared (``cdi.share``): made once at start-up and put in every spec,
    they are validated and rendered to JSON once."""
    mounts: dict[str, Mount] = {}

    def bind(real: str, container_path: str) -> None:
        mounts.setdefault(container_path, Mount(files.host(real), container_path, "bind", READ_ONLY_BIND))

    for lib in files.libraries:
        for name in _library_names(lib):
            bind(lib.file.real, f"{LIBRARY_DIR}/{name}")
    for name, binary in files.binaries:
        for directory in BINARY_DIRS:
            bind(binary.real, f"{directory}/{name}")
    for firmware in files.firmware:
        bind(firmware.real, firmware.path)
    return share(
        ContainerEdits(
            env=(f"LD_LIBRARY_PATH={LD_LIBRARY_PATH}",),
            device_nodes=tuple(DeviceNode(p) for p in CONTROL_NODES),
            mounts=tuple(mounts[path] for path in sorted(mounts)),
        )
    )


def _cdi_names(records: tuple[DeviceRecord, ...]) -> list[str]:
    """Each record's device name, made unique within the claim: a device allocated more than once (a shared
    GPU given to two requests, each with its own share ID) is named ``<device>-<shareID>`` (else ``-<k>``)."""
    repeated = {r.device for r in records if sum(o.device == r.device for o in records) > 1}
    return [f"{r.device}-{r.share_id or k}" if r.device in repeated else r.device for k, r in enumerate(records)]


def claim_spec(
    driver: str,
    claim_uid: str,
    records: tuple[DeviceRecord, ...],
    gpu_minors: Mapping[int, int],
    minors: Mapping[str, int],
    files: ContainerEdits,
) -> Spec:
    """The claim's spec. ``gpu_minors`` maps GPU index -> minor number (the /dev/nvidia<minor> node); ``files`` is
    ``driver_edits`` of the node's driver files, made once at start-up: it carries the control device nodes
    (edits made otherwise give specs without them), and its device nodes and mounts go in as they are, so their
    shared rendering is used."""
    uuids = ",".join(dict.fromkeys(device_uuid(r) for r in records))
    devices = tuple(
        Device(claim_device_name(claim_uid, name), _device_edits(r, gpu_minors[r.hardware.gpu_index], minors))
        for name, r in zip(_cdi_names(records), records, strict=True)
    )
    common = ContainerEdits(
        env=(f"NVIDIA_VISIBLE_DEVICES={uuids}", f"CUDA_VISIBLE_DEVICES={uuids}", *files.env),
        device_nodes=files.device_nodes,
        mounts=files.mounts,
    )
    return Spec(claim_kind(driver), devices, common)
