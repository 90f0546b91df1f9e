"""Facts about NVIDIA GPUs that are not queried from NVML. Pure."""

from __future__ import annotations

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
