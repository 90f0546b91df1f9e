"""An NVML session: load the library (real or simulated), init once, cache handles, translate errors."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import pynvml

from dra_driver import errors

_HINTS = {
    pynvml.NVML_ERROR_GPU_IS_LOST: "the GPU fell off the bus; check the kernel log for Xid 79, then reset the GPU "
    "or drain and reboot the node",
    pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES: "the placement is busy or the GPU has no capacity left for this profile",
    pynvml.NVML_ERROR_IN_USE: "destroy its compute instances (or stop its processes) first",
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: "the installed NVIDIA driver is too old for this call; upgrade the driver",
    pynvml.NVML_ERROR_NO_PERMISSION: "run the plugin as root (or with CAP_SYS_ADMIN) to change GPU settings",
}
_CLASSES: dict[int, type[errors.NvmlError]] = {
    pynvml.NVML_ERROR_GPU_IS_LOST: errors.GpuLost,
    pynvml.NVML_ERROR_NOT_SUPPORTED: errors.NotSupported,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: errors.NotSupported,
    pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES: errors.InsufficientResources,
    pynvml.NVML_ERROR_IN_USE: errors.InUse,
}


def translate(call: str, exc: pynvml.NVMLError) -> errors.DriverError:
    """The single place NVML errors become ours."""
    code = int(exc.value)
    if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return errors.NvmlUnavailable(
            "libnvidia-ml.so.1 not found: install the NVIDIA driver, point --nvml-lib (NVML_LIB) at the library, "
            "or use --simulate PROFILE for a simulated GPU node"
        )
    if code == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return errors.NvmlUnavailable(
            "NVML is installed but the NVIDIA kernel driver is not loaded (or, for the simulated NVML, "
            "DRA_SIM_NVML_STATE names no machine): load the driver with 'modprobe nvidia' or create the machine"
        )
    cls = _CLASSES.get(code, errors.NvmlError)
    return cls(call, code, str(exc), _HINTS.get(code, ""))


class Nvml:
    """A process's NVML session. Use as a context manager; safe to share between threads."""

    def __init__(self, library: Path | None = None) -> None:
        self.library = library
        self._handles: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._open = False

    def __enter__(self) -> Nvml:
        self.open()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        if self._open:
            return
        if self.library is not None:
            try:
                ctypes.CDLL(str(self.library))  # registers the SONAME that pynvml's CDLL() then resolves to
            except OSError as exc:
                raise errors.NvmlUnavailable(f"cannot load NVML library {self.library}: {exc}") from exc
        self.call("nvmlInit")
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._handles.clear()
            self.call("nvmlShutdown")

    def call(self, name: str, *args: Any) -> Any:
        """Call ``pynvml.<name>(*args)``; NVML errors come back as ``dra_driver.errors``."""
        try:
            return getattr(pynvml, name)(*args)
        except pynvml.NVMLError as exc:
            raise translate(name, exc) from exc

    def optional(self, name: str, *args: Any) -> Any:
        """Like ``call`` but None where the GPU or driver does not support the query."""
        try:
            return self.call(name, *args)
        except errors.NotSupported:
            return None

    def device(self, index: int) -> Any:
        with self._lock:
            if index not in self._handles:
                self._handles[index] = self.call("nvmlDeviceGetHandleByIndex", index)
            return self._handles[index]

    def device_count(self) -> int:
        return int(self.call("nvmlDeviceGetCount"))
