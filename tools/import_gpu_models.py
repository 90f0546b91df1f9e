"""Regenerate nvml_sim/gpu_models.json from ../shared/hardware/mig-profiles.json.

Usage: python tools/import_gpu_models.py [PATH_TO_mig-profiles.json]

Keeps only the fields the simulated NVML needs, for the models our machine profiles use.
Compute-instance profiles are derived from slice arithmetic (documented in docs/simulated-nvml.md).
The L4 (no MIG) is added from its public spec sheet values.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "hardware" / "mig-profiles.json"
TARGET = ROOT / "nvml_sim" / "gpu_models.json"
KEEP = {"A100-SXM4-40GB", "A100-SXM4-80GB", "A30-24GB", "H100-SXM5-80GB"}
GI_FIELDS = (
    "nvml_profile_enum_value",
    "profile_id",
    "name",
    "slice_count",
    "instance_count",
    "multiprocessor_count",
    "copy_engine_count",
    "decoder_count",
    "encoder_count",
    "jpeg_count",
    "ofa_count",
    "memory_size_mib",
    "is_p2p_supported",
    "placements",
)
L4 = {
    "product_name": "NVIDIA L4",
    "total_memory_mib": 23034,
    "nvml_device_arch": 8,
    "cuda_compute_capability": "8.9",
    "sm_count": 58,
    "mig_capable": False,
    "nvml_pci_device_id": "0x27B810DE",
    "max_memory_slices": 0,
    "max_compute_slices": 0,
}


def convert(source: dict[str, Any]) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = {}
    for model in source["models"]:
        if model["model"] not in KEEP:
            continue
        gpu = model["gpu"]
        models[model["model"]] = {
            "product_name": gpu["product_name"],
            "total_memory_mib": gpu["total_memory_mib"],
            "nvml_device_arch": gpu["nvml_device_arch"],
            "cuda_compute_capability": gpu["cuda_compute_capability"],
            "sm_count": gpu["sm_count"],
            "mig_capable": gpu["mig_capable"],
            "nvml_pci_device_id": gpu["nvml_pci_device_id"],
            "max_memory_slices": gpu["max_memory_slices"],
            "max_compute_slices": gpu["max_compute_slices"],
            "gpu_instance_profiles": [{k: p[k] for k in GI_FIELDS} for p in model["gpu_instance_profiles"]],
        }
    models["L4-24GB"] = dict(L4, gpu_instance_profiles=[])
    return {
        "source": "shared/hardware/mig-profiles.json (see its per-model sources); L4 from its spec sheet",
        "models": models,
    }


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    data = convert(json.loads(source.read_text()))
    TARGET.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {TARGET} ({len(data['models'])} models)")


if __name__ == "__main__":
    main()
