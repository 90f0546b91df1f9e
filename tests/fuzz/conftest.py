"""Hypothesis keeps its caches in the system's temporary directory, not in the work tree."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "dra-driver-gpu-hypothesis")
