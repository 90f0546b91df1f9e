"""The production distribution (deploy/image/pyproject.toml, installed by deploy/Dockerfile and
sandbox/plugin_image.py) holds only the production packages: no CLI, no sandbox, and the simulated NVML only
when an image for simulated GPUs is built.

The wheel is really built here from a staging directory laid out the way the Dockerfile stages it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "deploy" / "image" / "pyproject.toml"
PRODUCTION = {"api", "dra_driver", "kubelet_plugin", "controller"}
TOOLING = {"nvml_sim", "sandbox", "cli", "tests", "e2e", "bench"}


def _dockerfile_copies() -> dict[str, str]:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    return dict(re.findall(r"^COPY (\S+) (\S+)$", text, flags=re.MULTILINE))


def _build_wheel(tmp: Path, packages: set[str]) -> set[str]:
    stage = tmp / "stage"
    stage.mkdir()
    shutil.copy(IMAGE, stage / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in packages:
        shutil.copytree(ROOT / name, stage / name, ignore=ignore)
    out = tmp / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(stage)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        return {n.split("/", 1)[0] for n in z.namelist() if not n.split("/", 1)[0].endswith(".dist-info")}


def test_the_dockerfile_stages_exactly_the_production_packages_and_the_simulator_aside() -> None:
    copies = _dockerfile_copies()
    staged = {src for src, dst in copies.items() if dst == src}
    assert staged == PRODUCTION
    assert copies["nvml_sim"] == "/optional/nvml_sim"  # moved in only for the simulated wheel (target simulated)
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    production = dockerfile[dockerfile.index("FROM base AS production") :]
    assert "COPY --from=build /site /" in production and "site-sim" not in production and "nvml" not in production
    assert not TOOLING & set(copies) - {"nvml_sim"}


@pytest.mark.slow
def test_the_production_wheel_contains_no_simulator_sandbox_or_cli(tmp_path: Path) -> None:
    assert _build_wheel(tmp_path, PRODUCTION) == PRODUCTION


@pytest.mark.slow
def test_the_simulated_gpu_wheel_adds_only_the_simulated_nvml(tmp_path: Path) -> None:
    assert _build_wheel(tmp_path, PRODUCTION | {"nvml_sim"}) == PRODUCTION | {"nvml_sim"}


SANDBOX_ONLY = {"grpcio>=1.85.1"}  # the simulated kubelet's gRPC client; the plugin serves gRPC with dra_driver.h2grpc


def test_production_dependencies_are_the_development_ones_minus_tooling() -> None:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    image = tomllib.loads(IMAGE.read_text())["project"]
    production = set(image["dependencies"]) | set(image["optional-dependencies"]["simulated"])
    assert production == set(dev["dependencies"]) - SANDBOX_ONLY
    assert "cffi>=1.17" not in image["dependencies"]  # only the simulator compiles C


def test_production_entry_points_import_nothing_of_the_tooling() -> None:
    code = (
        "import sys, kubelet_plugin.plugin, controller.webhook.main; "
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(TOOLING | {'grpc'})!r})); "
        "sys.exit(f'imported: {bad}' if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_webhook_has_an_entry_point_of_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controller.webhook", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "--tls-cert" in result.stdout
