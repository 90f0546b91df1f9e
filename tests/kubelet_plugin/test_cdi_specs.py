"""Every claim's CDI spec gives the container the driver's files: read-only mounts, LD_LIBRARY_PATH, sorted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dra_driver.cdi import Mount, Spec
from dra_driver.driver_root import DriverFiles, discover_driver_files
from kubelet_plugin.cdi_specs import claim_spec, driver_edits
from kubelet_plugin.records import DeviceRecord, MigPartition, MpsSettings, WholeGpu
from tests.cdi.schema_check import schema_errors
from tests.driver_root.fake_tree import VERSION, driver, library, put

DRIVER = "gpu.dra-driver.dev"
CLAIM_UID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
GPU_UUID = "GPU-4b1e6c2a-6a43-5d0b-9d0c-3f1c2b7a9e10"
RO = ("ro", "nosuid", "nodev", "bind")
WHOLE = DeviceRecord(("gpu",), "node-a", "gpu-0", WholeGpu(GPU_UUID, 0))


def _files(root: Path, host_root: str = "/") -> DriverFiles:
    """The documented example's driver: RHEL layout (usr/lib64), libcuda + NVML, nvidia-smi, one firmware file."""
    driver(root, libdir="usr/lib64")
    put(root, "usr/bin/nvidia-smi")
    put(root, f"lib/firmware/nvidia/{VERSION}/gsp_ga10x.bin")
    return discover_driver_files(root, host_root)


def _spec(files: DriverFiles, *records: DeviceRecord, uid: str = CLAIM_UID) -> Spec:
    return claim_spec(DRIVER, uid, records or (WHOLE,), {0: 0, 1: 1}, {}, driver_edits(files))


def test_each_library_is_mounted_read_only_under_its_soname_and_versioned_name(tmp_path: Path) -> None:
    spec = _spec(_files(tmp_path, "/host"))
    libs = [m for m in spec.container_edits.mounts if m.container_path.startswith("/usr/local/nvidia/lib64/")]
    cuda, nvml = f"/host/usr/lib64/libcuda.so.{VERSION}", f"/host/usr/lib64/libnvidia-ml.so.{VERSION}"
    assert libs == [
        Mount(cuda, "/usr/local/nvidia/lib64/libcuda.so", "bind", RO),  # for builds that link with -lcuda
        Mount(cuda, "/usr/local/nvidia/lib64/libcuda.so.1", "bind", RO),
        Mount(cuda, f"/usr/local/nvidia/lib64/libcuda.so.{VERSION}", "bind", RO),
        Mount(nvml, "/usr/local/nvidia/lib64/libnvidia-ml.so.1", "bind", RO),
        Mount(nvml, f"/usr/local/nvidia/lib64/libnvidia-ml.so.{VERSION}", "bind", RO),
    ]


def test_the_library_path_is_the_one_nvidias_cuda_images_set(tmp_path: Path) -> None:
    env = _spec(_files(tmp_path)).container_edits.env
    assert env == (
        f"NVIDIA_VISIBLE_DEVICES={GPU_UUID}",
        f"CUDA_VISIBLE_DEVICES={GPU_UUID}",
        "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
    )


def test_binaries_go_to_both_bin_directories_and_firmware_to_its_own_path(tmp_path: Path) -> None:
    mounts = {m.container_path: m for m in _spec(_files(tmp_path)).container_edits.mounts}
    gsp = f"/lib/firmware/nvidia/{VERSION}/gsp_ga10x.bin"
    assert mounts["/usr/bin/nvidia-smi"] == Mount("/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi", "bind", RO)
    assert mounts["/usr/local/nvidia/bin/nvidia-smi"] == Mount(
        "/usr/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi", "bind", RO
    )
    assert mounts[gsp] == Mount(gsp, gsp, "bind", RO)
    assert all(m.options == RO and m.type == "bind" for m in mounts.values())


def test_a_library_whose_soname_is_its_versioned_name_is_mounted_once(tmp_path: Path) -> None:
    driver(tmp_path)
    library(tmp_path, "libnvidia-gpucomp", f"libnvidia-gpucomp.so.{VERSION}")
    paths = [m.container_path for m in driver_edits(discover_driver_files(tmp_path)).mounts]
    assert [p for p in paths if "gpucomp" in p] == [f"/usr/local/nvidia/lib64/libnvidia-gpucomp.so.{VERSION}"]


def test_mounts_are_sorted_and_the_spec_is_byte_stable(tmp_path: Path) -> None:
    files = _files(tmp_path)
    spec = _spec(files)
    paths = [m.container_path for m in spec.container_edits.mounts]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    assert _spec(discover_driver_files(tmp_path, "/")).to_json() == spec.to_json()


def test_driver_files_are_spec_wide_and_device_edits_stay_per_device(tmp_path: Path) -> None:
    mps = MpsSettings("mps-1", "/var/lib/dra-gpu/mps/1")
    mig = MigPartition(GPU_UUID, 1, "1g.5gb", 3, 1, 9, 0, "MIG-8494b274-5037-5fe7-b965-25cfd9fa530b")
    records = (
        DeviceRecord(("a",), "node-a", "gpu-0", WholeGpu(GPU_UUID, 0), mps=mps),
        DeviceRecord(("b",), "node-a", "gpu-1-mig-1g.5gb-3", mig),
    )
    spec = _spec(_files(tmp_path), *records)
    whole, partition = spec.devices
    assert whole.container_edits.mounts == (Mount(mps.pipe_directory, "/tmp/nvidia-mps", "none", ("rbind", "rw")),)
    assert partition.container_edits.mounts == () and len(partition.container_edits.device_nodes) == 3
    assert not any(
        m.container_path.startswith("/usr/local/nvidia") for d in spec.devices for m in d.container_edits.mounts
    )


@pytest.mark.parametrize(("uid", "version"), [(CLAIM_UID, "0.5.0"), ("c" + CLAIM_UID[1:], "0.4.0")])
def test_the_declared_cdi_version_is_the_minimum_the_mounts_need(tmp_path: Path, uid: str, version: str) -> None:
    """Typed mounts need 0.4.0; a claim UID starting with a digit needs 0.5.0."""
    spec = _spec(_files(tmp_path), uid=uid)
    assert spec.cdi_version == version
    assert schema_errors(spec.to_dict()) == []


def test_the_docs_example_is_what_the_plugin_writes_for_a_whole_gpu(tmp_path: Path) -> None:
    page = (Path(__file__).parents[2] / "docs" / "cdi.md").read_text()
    section = page.split("## A claim's spec", 1)[1]
    (block,) = re.findall(r"```json\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert json.loads(block) == _spec(_files(tmp_path)).to_dict()
