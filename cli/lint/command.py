"""``dra-gpu lint``'s shell: read files, ask the cluster, run the pure linter, print, choose the exit code.

Exit codes: 0 no findings, 1 findings, 2 an input could not be read or parsed (then only the errors are printed,
one line each on stderr, and nothing is linted) or the cluster could not be asked.
The simulated machine's slices are built by the CLI (``cli.lint_cmd``) and passed in.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import urllib3
from kubernetes.config import ConfigException

from cli.lint.core import Options, lint_documents
from cli.lint.feasibility import Environment, Target
from cli.lint.load import Document, Unreadable, parse_documents
from cli.lint.report import render
from dra_driver.classes import device_classes
from dra_driver.errors import DriverError
from dra_driver.k8s import ApiError, Kube
from dra_driver.structured import Node

Obj = Mapping[str, Any]
EXTENSIONS = (".yaml", ".yml", ".json")
RESOURCE_VERSIONS = ("v1", "v1beta2")  # the shapes of ResourceSlice the allocator reads


@dataclass(frozen=True)
class LintArgs:
    files: Sequence[str]  # paths, directories (searched for *.yaml, *.yml, *.json) or "-" for stdin
    driver: str
    output: str = "table"
    profile: str | None = None
    profile_slices: Mapping[str, Sequence[Obj]] | None = None  # mode -> the profile's slices in that mode
    kubeconfig: Path | None = None


def _expand(files: Sequence[str]) -> Iterator[str]:
    for name in files:
        path = Path(name)
        if name != "-" and path.is_dir():
            yield from sorted(str(p) for p in path.rglob("*") if p.suffix in EXTENSIONS and p.is_file())
        else:
            yield name


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_documents(files: Sequence[str], stdin: TextIO) -> tuple[list[Document], list[str]]:
    """Documents of every readable file, and one error line per file that cannot be read or parsed."""
    documents: list[Document] = []
    errors = []
    for name in _expand(files):
        try:
            text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as e:
            errors.append(f"{name}: cannot read: {e.strerror or e}")
            continue
        except UnicodeDecodeError as e:
            errors.append(f"{name}: cannot read: not UTF-8 text ({e.reason} at byte {e.start})")
            continue
        try:
            documents += parse_documents(text, "<stdin>" if name == "-" else name)
        except Unreadable as e:  # every limit and syntax error of the bounded loader
            errors.append(_one_line(str(e)))
    return documents, errors


def profile_environment(profile: str, slices_by_mode: Mapping[str, Sequence[Obj]]) -> Environment:
    """One target per mode; the node is named after the profile. With one mode, claims are checked whole."""
    single = len(slices_by_mode) == 1
    description = f"profile {profile}" + (f" (mode {next(iter(slices_by_mode))})" if single else "")
    targets = tuple(Target(mode, tuple(slices), (Node(profile),)) for mode, slices in slices_by_mode.items())
    return Environment(description, targets, whole_claims=single)


def _list_any(kube: Kube, resource: str) -> list[dict[str, Any]]:
    for version in RESOURCE_VERSIONS:
        try:
            return kube.list(f"/apis/resource.k8s.io/{version}/{resource}")
        except ApiError as e:
            if not e.not_found:
                raise
    raise DriverError(f"the cluster serves neither resource.k8s.io/v1 nor v1beta2 {resource}")


def cluster_inputs(kube: Kube) -> tuple[dict[str, Obj], Environment]:
    """The cluster's DeviceClasses by name, and its slices and nodes as an environment."""
    classes: dict[str, Obj] = {str(c["metadata"]["name"]): c for c in _list_any(kube, "deviceclasses")}
    slices = tuple(_list_any(kube, "resourceslices"))
    try:
        nodes = tuple(
            Node(str(n["metadata"]["name"]), dict(n["metadata"].get("labels") or {}))
            for n in kube.list("/api/v1/nodes")
        )
    except ApiError:  # no permission to list nodes: the nodes the slices name
        nodes = tuple(Node(n) for n in sorted({str(s["spec"].get("nodeName")) for s in slices} - {"None", ""}))
    return classes, Environment("the cluster (its current ResourceSlices)", (Target("cluster", slices, nodes),))


def run(args: LintArgs, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    documents, errors = read_documents(args.files, sys.stdin)
    if errors:
        for line in errors:
            stderr.write(f"dra-gpu lint: {line}\n")
        return 2
    shipped = {str(c["metadata"]["name"]): c for c in device_classes(args.driver)}
    environments = []
    cluster_classes = None
    if args.profile and args.profile_slices:
        environments.append(profile_environment(args.profile, args.profile_slices))
    if args.kubeconfig is not None:
        try:
            cluster_classes, environment = cluster_inputs(Kube.from_kubeconfig(args.kubeconfig))
        except (DriverError, OSError, ValueError, ConfigException, urllib3.exceptions.HTTPError) as e:
            stderr.write(_one_line(f"dra-gpu lint: cannot read the cluster through {args.kubeconfig}: {e}") + "\n")
            return 2
        environments.append(environment)
    options = Options(args.driver, shipped, cluster_classes, tuple(environments))
    result = lint_documents(documents, options)
    stdout.write(render(result, args.output))
    return 1 if result.findings else 0
