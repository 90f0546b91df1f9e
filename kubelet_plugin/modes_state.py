"""What the NodeGpuModes watch keeps on disk, in the plugin's state directory, across restarts.

- ``gpumodes.json``: the modes applied from NodeGpuModes specs, by GPU UUID (``load_applied``/``save_applied``), so a
  restarted plugin keeps publishing them;
- ``gpumodes-changing.json``: the UUIDs of GPUs whose hardware change has begun and not ended (``load_changing``/
  ``save_changing``): a plugin killed in the middle of a change leaves them there, and the next one does not
  publish those GPUs until it has finished a change on them or found them in the desired mode (a half-made MIG
  layout is never offered to the scheduler).

Both are written atomically (a temporary file renamed over the old one).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from api.errors import ConfigError
from api.gpumodes import GpuModeSpec, NodeGpuModesSpec, parse_spec, render_spec

STATE_FILE = "gpumodes.json"
CHANGING_FILE = "gpumodes-changing.json"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_applied(path: Path) -> dict[str, GpuModeSpec]:
    """The modes applied from NodeGpuModes specs, by GPU UUID (none when the file does not exist)."""
    if not path.exists():
        return {}
    spec = parse_spec(json.loads(path.read_text()))
    return {g.uuid: g for g in spec.gpus}


def save_applied(path: Path, applied: Mapping[str, GpuModeSpec]) -> None:
    _write(path, json.dumps(render_spec(NodeGpuModesSpec(tuple(applied.values())))))


def load_changing(path: Path) -> set[str]:
    """UUIDs of GPUs whose change was interrupted (none when the file does not exist)."""
    if not path.exists():
        return set()
    data = json.loads(path.read_text())
    if not isinstance(data, list) or not all(isinstance(u, str) for u in data):
        raise ConfigError(str(path), "must be a JSON list of GPU UUIDs")
    return set(data)


def save_changing(path: Path, uuids: Iterable[str]) -> None:
    _write(path, json.dumps(sorted(uuids)))
