"""``dra-gpu lint``: check DeviceClass, ResourceClaim and ResourceClaimTemplate manifests before applying them.

- ``load``: files → documents (multi-document YAML, JSON, ``kind: List``), duplicate keys, line numbers;
- ``shapes`` + ``schema``: the resource.k8s.io v1 / v1beta2 / v1beta1 structures, and the checker
  (unknown or misspelt fields, required fields, types, enumerations, sizes);
- ``rules``: cross-field rules of the API server's validation (one-of fields, names, references);
- ``checks``: CEL selectors compile, this driver's opaque configs decode (``configs``, the shared
  validator, also used by the admission webhook), device classes exist;
- ``feasibility``: could any device of a simulated machine (per mode) or of a cluster ever satisfy a request;
- ``core``: all of it over documents (pure); ``command``: the shell (files, cluster, exit code), imported
  by ``dra-gpu lint`` and not from here, so that the pure parts load without the Kubernetes client.

See docs/lint.md.
"""

from api.config.entries import config_errors
from cli.lint.core import Options, Result, lint_documents
from cli.lint.feasibility import Environment, Target
from cli.lint.findings import Finding, Issue
from cli.lint.load import Document, Unreadable, parse_documents

__all__ = [
    "Document",
    "Environment",
    "Finding",
    "Issue",
    "Options",
    "Result",
    "Target",
    "Unreadable",
    "config_errors",
    "lint_documents",
    "parse_documents",
]
