"""Errors of the sandbox, placed in the project's exception tree (:mod:`dra_driver.errors`).

::

    FatalError
    └── SandboxError              the sandbox cannot do what was asked
        ├── BinariesUnavailable   no usable binary and no way to build one (names the env vars to set)
        ├── BuildFailed           ``go build`` failed (points at its output)
        └── StartupFailed         a component did not become ready (points at its log file)

Every message says what to do next.
"""

from __future__ import annotations

from dra_driver.errors import FatalError


class SandboxError(FatalError):
    """Base of the sandbox's errors."""


class BinariesUnavailable(SandboxError):
    pass


class BuildFailed(SandboxError):
    pass


class StartupFailed(SandboxError):
    pass
