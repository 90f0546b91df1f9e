"""Transient CDI spec files in a spec directory (``/var/run/cdi``): write, remove, list. The I/O edge.

One spec per claim, named ``<vendor>-<class>_<claimUID>.json``; every write replaces the file atomically
(``atomic.write_atomically``, or through a removed spec's file: ``spares.py``), so a runtime scanning the
directory never loads a partial spec.
"""

from __future__ import annotations

import threading
from pathlib import Path

from dra_driver.cdi import names
from dra_driver.cdi.atomic import remove_durably, stale_temp_files
from dra_driver.cdi.model import Spec
from dra_driver.cdi.spares import Spares
from dra_driver.errors import ConfigError

SPEC_EXTENSIONS = (".json", ".yaml")  # what CDI runtimes load; anything else in the directory is ignored


def _checked_name(filename: str) -> str:
    if "/" in filename or filename.startswith(".") or not filename.endswith(".json"):
        raise ConfigError("filename", f"CDI spec file name {filename!r} must be a plain, visible name ending in .json")
    return filename


def write_spec(directory: Path, spec: Spec, filename: str, durable: bool = True) -> Path:
    """Write ``spec`` as ``directory/filename`` atomically (creating the directory); returns the path.

    ``durable=False`` skips the fsyncs (``atomic.write_atomically``): for a writer that rewrites its specs
    after a reboot anyway (the kubelet plugin's start-up repair)."""
    path = directory / _checked_name(filename)
    data = spec.to_json().encode()
    try:
        _spares(directory).write(path, data, durable=durable)
    except FileNotFoundError:  # no directory (yet, or any more): made only then, not on every write
        directory.mkdir(parents=True, exist_ok=True)
        _spares(directory).write(path, data, durable=durable)
    return path


def remove_spec(directory: Path, filename: str, durable: bool = True) -> bool:
    """Remove a spec file; False when it was not there (unprepare is idempotent)."""
    return _spares(directory).remove(directory / _checked_name(filename), durable)


_SPARES: dict[Path, Spares] = {}
_SPARES_LOCK = threading.Lock()


def _spares(directory: Path) -> Spares:
    """The spare files of ``directory`` (spares.py: removed specs' files, reused by the next writes)."""
    with _SPARES_LOCK:
        if directory not in _SPARES:
            _SPARES[directory] = Spares(directory)
        return _SPARES[directory]


def list_specs(directory: Path, kind: str) -> dict[str, Path]:
    """Our transient specs of ``kind`` in ``directory``: claim UID -> path. Other files are left alone."""
    prefix = names.spec_file_prefix(kind)
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(prefix) and path.suffix in SPEC_EXTENSIONS and path.is_file():
            found[path.name[len(prefix) : -len(path.suffix)]] = path
    return found


def remove_stale_temp_files(directory: Path, kind: str) -> list[Path]:
    """Delete temporary files that a crash during ``write_spec`` left for ``kind``; returns what was removed."""
    stale = stale_temp_files(directory, names.spec_file_prefix(kind))
    for path in stale:
        remove_durably(path)
    return stale
