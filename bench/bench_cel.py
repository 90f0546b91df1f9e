"""Selector evaluations per second (``python -m bench.bench_cel``). Prints; never asserts."""

from __future__ import annotations

import time

from dra_driver.cel import DeviceView, compile_selector, device_view

DRIVER = "gpu.dra-driver.dev"
EXPRESSIONS = (
    f'device.driver == "{DRIVER}"',
    f'device.attributes["{DRIVER}"].type == "gpu"',
    f'device.attributes["{DRIVER}"].productName.startsWith("NVIDIA") && device.attributes["{DRIVER}"].index < 4',
    f'device.capacity["{DRIVER}"].memory.compareTo(quantity("40Gi")) >= 0',
    f'device.attributes["{DRIVER}"].driverVersion.isGreaterThan(semver("550.0.0"))',
    f'device.attributes["{DRIVER}"].?model.orValue("none") == "none"',
)


def devices(count: int = 100) -> list[DeviceView]:
    return [
        device_view(
            DRIVER,
            {
                "name": f"gpu-{i}",
                "attributes": {
                    "type": {"string": "gpu"},
                    "index": {"int": i},
                    "productName": {"string": "NVIDIA H100 80GB HBM3"},
                    "driverVersion": {"version": "550.54.15"},
                    "resource.kubernetes.io/pcieRoot": {"string": "pci0000:00"},
                },
                "capacity": {"memory": {"value": "80Gi"}, "multiprocessors": {"value": "132"}},
            },
        )
        for i in range(count)
    ]


def rate(expression: str, views: list[DeviceView], seconds: float = 0.5) -> float:
    selector = compile_selector(expression)
    evaluations, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for view in views:
            selector.matches(view)
        evaluations += len(views)
    return evaluations / (time.perf_counter() - start)


def main() -> None:
    views = devices()
    for expression in EXPRESSIONS:
        rate(expression, views, 0.05)  # warm the per-device activations
        print(f"{rate(expression, views):>12,.0f} evaluations/s  {expression}")


if __name__ == "__main__":
    main()
