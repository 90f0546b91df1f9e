"""Errors of the selector CEL environment; both are DriverErrors (see ``dra_driver.errors``).

::

    DriverError
    └── CelError                 a DRA selector expression cannot be used
        ├── CelCompileError      the expression does not compile (syntax, unknown function, wrong type)
        └── CelEvalError         evaluating it against one device failed (e.g. unknown attribute)

In kube-scheduler both abort scheduling of the pod (the Filter returns an error, not "unschedulable"):
a claim whose selector errors on a device it reaches is not allocatable until the selector is fixed.
"""

from __future__ import annotations

from dra_driver.errors import DriverError


class CelError(DriverError):
    def __init__(self, expression: str, message: str) -> None:
        super().__init__(message)
        self.expression = expression
        self.message = message


class CelCompileError(CelError):
    """``message`` like the API server's (``compilation failed: ERROR: <input>:1:5: ...``); ``str()`` adds
    the expression the way the API server reports an invalid value: ``Invalid value: "<expr>": <message>``.
    """

    def __str__(self) -> str:
        return f"Invalid value: {_quoted(self.expression)}: {self.message}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class CelEvalError(CelError):
    """Message like the scheduler's CEL runtime error, e.g. ``no such key: model``."""
