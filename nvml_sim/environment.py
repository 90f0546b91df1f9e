"""What a process that is not this Python needs in its environment to run the simulated NVML.

The library runs its simulator in the Python it was built with; a Go or C client starts that interpreter
inside itself, which finds its standard library on its own (libpython knows its prefix) but not the packages
of this checkout's environment: ``nvml_sim`` itself and cffi's ``_cffi_backend``. ``PYTHONPATH`` names them.
"""

from __future__ import annotations

import os
from pathlib import Path

import _cffi_backend  # type: ignore[import-untyped]
import cffi

import nvml_sim


def python_path(existing: str = "") -> str:
    """``PYTHONPATH`` reaching nvml_sim and cffi first, then the entries of ``existing`` not already named."""
    wanted = [
        Path(nvml_sim.__file__).resolve().parent.parent,
        Path(cffi.__file__).resolve().parent.parent,
        Path(_cffi_backend.__file__).resolve().parent,
    ]
    entries: list[str] = []
    for entry in [*map(str, wanted), *existing.split(os.pathsep)]:
        if entry and entry not in entries:
            entries.append(entry)
    return os.pathsep.join(entries)
