"""The chart as the tests see it: helm runs (template, lint), the value variants every test renders, and the
rendered objects as dicts. Shared by tests/deploy and e2e/sandbox/test_chart.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "dra-driver-gpu"
DOCS = ROOT / "docs" / "deploy.md"
RELEASE = "gpu"
NAMESPACE = "dra-gpu"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
Obj = dict[str, Any]

# name -> helm arguments. Every variant must lint, render, and be accepted by a real API server (dry run).
# ``-f -`` reads docs/deploy.md's example values (see :func:`helm`).
VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "driver-name": ("--set", "driverName=acme-gpu.example.com"),
    "driver-name-gpu-prefix": ("--set", "driverName=gpu.acme.example.com"),
    "webhook": ("--set", "webhook.enabled=true"),
    "webhook-cert-manager": ("--set", "webhook.enabled=true,webhook.tls.source=certManager"),
    "webhook-secret": (
        "--set",
        "webhook.enabled=true,webhook.tls.source=secret,webhook.tls.secretName=mine,webhook.tls.caBundle=Q0E=",
    ),
    "controller": ("--set", "controller.enabled=true"),
    "metrics": ("--set", "metrics.enabled=true"),
    "metrics-service-monitor": ("--set", "metrics.enabled=true", "--api-versions", SERVICE_MONITOR_API),
    "simulated": ("--set", "simulatedGpus.enabled=true,simulatedGpus.profile=dgx-h100"),
    "no-classes-no-policy": ("--set", "deviceClasses=false,admissionPolicy.enabled=false"),
    "everything": (
        "--set",
        "driverName=all.example.com,webhook.enabled=true,controller.enabled=true,metrics.enabled=true,"
        "simulatedGpus.enabled=true,partitioning.defaultMode=mig",
        "--api-versions",
        SERVICE_MONITOR_API,
    ),
    "docs-example": ("-f", "-"),
}


def docs_example_values() -> str:
    """The ```yaml block of docs/deploy.md that starts with ``# my-values.yaml``."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    found = [b for b in blocks if b.startswith("# my-values.yaml")]
    assert len(found) == 1, "docs/deploy.md must hold one ```yaml block starting with # my-values.yaml"
    return found[0]


def helm(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run helm (no repositories, no plugins, no cluster unless ``args`` name one); stdout and stderr kept.

    ``-f -`` among ``args`` gets docs/deploy.md's example values on standard input."""
    words = [str(a) for a in args]
    reads_docs = any(words[i : i + 2] == ["-f", "-"] for i in range(len(words)))
    return subprocess.run(
        [str(binary), *words],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        input=docs_example_values() if reads_docs else "",
    )


def template(binary: Path, *args: str, namespace: str = NAMESPACE) -> list[Obj]:
    """``helm template`` of the chart as release ``gpu``: the rendered objects, in order."""
    done = helm(binary, "template", RELEASE, CHART, "--namespace", namespace, *args)
    assert done.returncode == 0, f"helm template {' '.join(args)} failed:\n{done.stderr}"
    return [o for o in yaml.safe_load_all(done.stdout) if o]


def refusal(binary: Path, command: str, *args: str) -> str:
    """The error of a ``helm template`` or ``helm lint`` that must fail."""
    target = ("template", RELEASE, CHART) if command == "template" else ("lint", CHART)
    done = helm(binary, *target, *args)
    assert done.returncode != 0, f"helm {command} {' '.join(args)} succeeded; it must refuse"
    return done.stdout + done.stderr


def for_lint(args: tuple[str, ...]) -> tuple[str, ...]:
    """``args`` without ``--api-versions X`` (helm lint has no such flag)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--api-versions":
            skip = True
        else:
            out.append(arg)
    return tuple(out)


def by_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Obj], kind: str) -> Obj:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects, expected one"
    return found[0]


def plugin_env(objects: list[Obj]) -> dict[str, str]:
    container = one(objects, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "<from field>") for e in container["env"]}


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
