"""A shell script a container on a real node runs to print what it sees of its GPUs, and its parser.

The script needs only busybox (``sandbox.local/busybox:latest``): the visible-device variables, the MPS
variables, the NVIDIA device nodes and MIG capabilities present, which driver libraries the dynamic linker's
search path (``LD_LIBRARY_PATH``) holds, and whether ``nvidia-smi`` is mounted. Used by the demo and the
real-node tests.
"""

from __future__ import annotations

from dataclasses import dataclass

PROBE_SCRIPT = r"""
echo "VISIBLE=$NVIDIA_VISIBLE_DEVICES"
echo "LDPATH=$LD_LIBRARY_PATH"
env | grep '^CUDA_MPS' | sed 's/^/MPS=/'
for d in /dev/nvidia*; do [ -c "$d" ] && echo "DEV=$d"; done
for d in /dev/nvidia-caps/*; do [ -c "$d" ] && echo "CAP=$d"; done
for dir in $(echo "$LD_LIBRARY_PATH" | tr ':' ' '); do
  for lib in libcuda.so.1 libnvidia-ml.so.1; do [ -f "$dir/$lib" ] && echo "LIB=$lib"; done
done
[ -x /usr/bin/nvidia-smi ] && echo "BIN=nvidia-smi"
echo END
exec sleep 3600
"""


@dataclass(frozen=True)
class Seen:
    """What one container printed."""

    visible: tuple[str, ...]
    devices: frozenset[str]
    caps: frozenset[str]
    libs: frozenset[str]
    mps: tuple[str, ...]
    bins: frozenset[str]

    @property
    def gpu_nodes(self) -> frozenset[str]:
        return frozenset(d for d in self.devices if d.removeprefix("/dev/nvidia").isdigit())

    def summary(self) -> str:
        return (
            f"{','.join(self.visible) or '-'}  devices {' '.join(sorted(self.devices))}  "
            f"caps {' '.join(sorted(c.rsplit('/', 1)[-1] for c in self.caps)) or '-'}  "
            f"linker finds {' '.join(sorted(self.libs)) or 'nothing'}" + (f"  {' '.join(self.mps)}" if self.mps else "")
        )


def parse(log: str) -> Seen | None:
    """The report in a container's log, or None until it is complete."""
    if "END" not in log.split():
        return None
    values: dict[str, list[str]] = {}
    for line in log.splitlines():
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    visible = tuple(v for v in (values.get("VISIBLE") or [""])[0].split(",") if v)
    return Seen(
        visible,
        frozenset(values.get("DEV", [])),
        frozenset(values.get("CAP", [])),
        frozenset(values.get("LIB", [])),
        tuple(values.get("MPS", [])),
        frozenset(values.get("BIN", [])),
    )


def probe_container(container: dict[str, object]) -> dict[str, object]:
    """``container`` running the probe in the sandbox's test image instead of its own image and command."""
    from sandbox.images import BUSYBOX_IMAGE

    return {**container, "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", PROBE_SCRIPT]}
