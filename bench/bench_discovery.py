"""Discovery time of a simulated DGX H100 (8 GPUs), empty and with 7 MIG devices per GPU.

Prints numbers; asserts nothing. Baseline in the same run: the cheapest useful NVML walk
(count + handle + name of every GPU) through the same library, to give the ratio.

    .venv/bin/python -m bench.bench_discovery [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pynvml

from dra_driver.nvml.discovery import discover
from dra_driver.nvml.session import Nvml
from nvml_sim.control import SimulatedMachine


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _baseline() -> None:
    for i in range(pynvml.nvmlDeviceGetCount()):
        pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))


def _cold_discovery() -> None:
    with Nvml() as fresh:  # a new session: handle look-ups not cached yet
        discover(fresh)


def _fill_with_mig_devices(nvml: Nvml) -> None:
    for i in range(nvml.device_count()):
        h = nvml.device(i)
        for _ in range(7):
            gi = nvml.call("nvmlDeviceCreateGpuInstance", h, 19)  # 1g.10gb
            nvml.call("nvmlGpuInstanceCreateComputeInstance", gi, 0)


def _report(label: str, samples: list[float], baseline: float) -> None:
    med = statistics.median(samples)
    print(
        f"{label:44} median {med * 1e3:8.2f} ms  p90 {sorted(samples)[int(len(samples) * 0.9)] * 1e3:8.2f} ms"
        f"  ({med / baseline:5.1f}x baseline)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        SimulatedMachine.create(Path(tmp) / "m.json", "dgx-h100").activate()
        with Nvml() as nvml:
            first = _timed(_cold_discovery, 1)[0]
            base = statistics.median(_timed(_baseline, args.repeat))
            print(f"dgx-h100, simulated NVML, {args.repeat} runs each")
            print(f"{'baseline: count + handle + name of 8 GPUs':44} median {base * 1e3:8.2f} ms")
            print(f"{'first discovery (cold session)':44} {first * 1e3:8.2f} ms")
            _report("discovery, no MIG devices", _timed(lambda: discover(nvml), args.repeat), base)
            _fill_with_mig_devices(nvml)
            inv = discover(nvml)
            assert sum(len(g.mig_devices) for g in inv.gpus) == 56
            _report("discovery, 56 MIG devices (7 per GPU)", _timed(lambda: discover(nvml), args.repeat), base)


if __name__ == "__main__":
    main()
