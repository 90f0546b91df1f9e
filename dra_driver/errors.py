"""The project's one exception tree. Lower-level errors are translated into it at the edges.

::

    DriverError                       anything this project raises on purpose
    ├── FatalError                    the process cannot do its job; an operator must act
    │   ├── NvmlUnavailable           no NVML library / no driver loaded
    │   └── ConfigError               invalid configuration or input (names the field)
    └── RecoverableError              retry, roll back or report per claim
        └── NvmlError                 an NVML call failed (carries the call and NVML's code)
            ├── GpuLost               the GPU fell off the bus (NVML_ERROR_GPU_IS_LOST)
            ├── NotSupported          the GPU cannot do this (e.g. MIG on a non-MIG GPU)
            ├── InsufficientResources placement busy / no capacity left
            └── InUse                 object still has users (e.g. GPU instance with compute instances)

Every message says what failed and what to do about it.
"""

from __future__ import annotations

import api.errors


class DriverError(Exception):
    """Base of every error this project raises on purpose."""


class FatalError(DriverError):
    pass


class RecoverableError(DriverError):
    pass


class ConfigError(api.errors.ConfigError, FatalError):
    """Invalid input, raised by our layers; ``api.errors.ConfigError`` (its base) is raised by ``api``."""


class NvmlUnavailable(FatalError):
    pass


class NvmlError(RecoverableError):
    def __init__(self, call: str, code: int, detail: str, hint: str = "") -> None:
        text = f"NVML {call} failed: {detail} (NVML error {code})"
        super().__init__(f"{text}; {hint}" if hint else text)
        self.call = call
        self.code = code


class GpuLost(NvmlError):
    pass


class NotSupported(NvmlError):
    pass


class InsufficientResources(NvmlError):
    pass


class InUse(NvmlError):
    pass
