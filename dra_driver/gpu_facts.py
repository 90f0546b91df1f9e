"""Facts about NVIDIA GPUs that are not queried from NVML, and rules over those that are. Pure."""

from __future__ import annotations

from dra_driver.inventory import Gpu, MigProfile

ARCHITECTURES = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada",
    9: "Hopper",
    10: "Blackwell",
    13: "Rubin",
}


def cuda_cores_per_sm(compute_capability: tuple[int, int]) -> int:
    """FP32 CUDA cores per SM: 64 on GA100 (8.0) and GV100 (7.0), 128 on GA10x/AD10x (8.6/8.9) and GH100 (9.0)."""
    return 64 if compute_capability in ((8, 0), (7, 0), (6, 0)) else 128


def architecture_name(code: int) -> str:
    return ARCHITECTURES.get(code, "Unknown")


def full_size_profile(gpu: Gpu) -> MigProfile | None:
    """The MIG profile spanning every memory slice (7g.40gb on an A100-40GB, 4g.24gb on an A30), if any.

    On a MIG-enabled GPU this instance *is* the whole GPU: CUDA reaches a MIG-mode GPU only through a MIG device,
    so a whole-GPU claim gets it (98 SMs and 40192 MiB on an A100-40GB, not the 108 SMs and 40 GiB of MIG off).
    """
    return next((p for p in gpu.mig_profiles if p.memory_slices == gpu.memory_slices), None)


def whole_gpu_resources(gpu: Gpu) -> tuple[int, int]:
    """(memory bytes, multiprocessors) a whole-GPU claim gets: the full-size MIG instance's when MIG is on."""
    full = full_size_profile(gpu) if gpu.mig_enabled else None
    if full is None:
        return gpu.memory_bytes, gpu.multiprocessors
    return full.memory_bytes, full.multiprocessors
