"""MIG profile tables of the GPUs this driver knows, by NVML product name. Pure data.

The controller needs them to judge a change to MIG on a GPU that is not in MIG mode now: NVML lists a GPU's
instance profiles only while MIG is on, and a GPU's slices in another mode do not carry them. Each entry is
the product's total memory (MiB) and SMs with MIG off, then one row per GPU-instance profile, in the order
discovery lists them: (name, profile id, compute slices, memory slices, memory MiB, SMs, copy engines,
decoders, encoders, JPEG engines, OFA engines, instance count, placement starts).
tests/controller/test_catalogue.py holds it equal to the simulated GPUs' facts (nvml_sim/gpu_models.json).
"""

from __future__ import annotations

from functools import cache

from dra_driver.inventory import MigProfile, Placement

MIB = 1024 * 1024
ProfileRow = tuple[str, int, int, int, int, int, int, int, int, int, int, int, tuple[int, ...]]

PRODUCTS: dict[str, tuple[int, int, tuple[ProfileRow, ...]]] = {
    "NVIDIA A100-SXM4-40GB": (
        40960,
        108,
        (
            ("1g.5gb", 19, 1, 1, 4864, 14, 1, 0, 0, 0, 0, 7, (0, 1, 2, 3, 4, 5, 6)),
            ("1g.5gb+me", 20, 1, 1, 4864, 14, 1, 1, 0, 1, 1, 1, (0, 1, 2, 3, 4, 5, 6)),
            ("1g.10gb", 15, 1, 2, 9856, 14, 1, 1, 0, 0, 0, 4, (0, 2, 4, 6)),
            ("2g.10gb", 14, 2, 2, 9856, 28, 2, 1, 0, 0, 0, 3, (0, 2, 4)),
            ("3g.20gb", 9, 3, 4, 19968, 42, 3, 2, 0, 0, 0, 2, (0, 4)),
            ("4g.20gb", 5, 4, 4, 19968, 56, 4, 2, 0, 0, 0, 1, (0,)),
            ("7g.40gb", 0, 7, 8, 40192, 98, 7, 5, 0, 1, 1, 1, (0,)),
        ),
    ),
    "NVIDIA A100-SXM4-80GB": (
        81920,
        108,
        (
            ("1g.10gb", 19, 1, 1, 9728, 14, 1, 0, 0, 0, 0, 7, (0, 1, 2, 3, 4, 5, 6)),
            ("1g.10gb+me", 20, 1, 1, 9728, 14, 1, 1, 0, 1, 1, 1, (0, 1, 2, 3, 4, 5, 6)),
            ("1g.20gb", 15, 1, 2, 19968, 14, 1, 1, 0, 0, 0, 4, (0, 2, 4, 6)),
            ("2g.20gb", 14, 2, 2, 19968, 28, 2, 1, 0, 0, 0, 3, (0, 2, 4)),
            ("3g.40gb", 9, 3, 4, 40192, 42, 3, 2, 0, 0, 0, 2, (0, 4)),
            ("4g.40gb", 5, 4, 4, 40192, 56, 4, 2, 0, 0, 0, 1, (0,)),
            ("7g.80gb", 0, 7, 8, 80896, 98, 7, 5, 0, 1, 1, 1, (0,)),
        ),
    ),
    "NVIDIA A30": (
        24576,
        56,
        (
            ("1g.6gb", 14, 1, 1, 5952, 14, 1, 1, 0, 0, 0, 4, (0, 1, 2, 3)),
            ("1g.6gb+me", 21, 1, 1, 5952, 14, 1, 1, 0, 1, 1, 1, (0, 1, 2, 3)),
            ("2g.12gb", 5, 2, 2, 11968, 28, 2, 2, 0, 0, 0, 2, (0, 2)),
            ("2g.12gb+me", 6, 2, 2, 11968, 28, 2, 2, 0, 1, 1, 1, (0, 2)),
            ("4g.24gb", 0, 4, 4, 24000, 56, 4, 4, 0, 1, 1, 1, (0,)),
        ),
    ),
    "NVIDIA H100 80GB HBM3": (
        81559,
        132,
        (
            ("1g.10gb", 19, 1, 1, 9984, 16, 1, 1, 0, 1, 0, 7, (0, 1, 2, 3, 4, 5, 6)),
            ("1g.10gb+me", 20, 1, 1, 9984, 16, 1, 1, 0, 1, 1, 1, (0, 1, 2, 3, 4, 5, 6)),
            ("1g.20gb", 15, 1, 2, 20096, 26, 1, 1, 0, 1, 0, 4, (0, 2, 4, 6)),
            ("2g.20gb", 14, 2, 2, 20096, 32, 2, 2, 0, 2, 0, 3, (0, 2, 4)),
            ("3g.40gb", 9, 3, 4, 40448, 60, 3, 3, 0, 3, 0, 2, (0, 4)),
            ("4g.40gb", 5, 4, 4, 40448, 64, 4, 4, 0, 4, 0, 1, (0,)),
            ("7g.80gb", 0, 7, 8, 81152, 132, 8, 7, 0, 7, 1, 1, (0,)),
        ),
    ),
}


def _profile(row: ProfileRow) -> MigProfile:
    name, pid, compute, size, mib, sms, ce, dec, enc, jpg, ofa, count, starts = row
    return MigProfile(
        name,
        pid,
        compute,
        size,
        mib * MIB,
        sms,
        ce,
        dec,
        enc,
        jpg,
        ofa,
        count,
        tuple(Placement(s, size) for s in starts),
    )


@cache
def mig_profiles(product_name: str) -> tuple[MigProfile, ...]:
    """The product's GPU-instance profiles; () for a product this table does not know (no MIG assumed)."""
    entry = PRODUCTS.get(product_name)
    return tuple(_profile(r) for r in entry[2]) if entry else ()


def totals(product_name: str) -> tuple[int, int] | None:
    """(memory bytes, SMs) with MIG off, for a known product."""
    entry = PRODUCTS.get(product_name)
    return (entry[0] * MIB, entry[1]) if entry else None
