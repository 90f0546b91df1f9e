"""Does a node see a slice or a device? ``NodeMatches`` and core/v1 NodeSelector matching. Pure.

NodeSelector semantics follow ``k8s.io/component-helpers/scheduling/corev1/nodeaffinity``: terms are ORed,
the requirements of a term ANDed, an empty term matches nothing; ``matchExpressions`` work on labels
(In, NotIn, Exists, DoesNotExist, Gt, Lt), ``matchFields`` on ``metadata.name`` (In, NotIn, one value).
A malformed selector raises ``ConfigError`` (the scheduler fails the attempt with an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dra_driver.errors import ConfigError
from dra_driver.structured.model import Node, NodeSelection


def node_matches(node: Node, selection: NodeSelection) -> bool:
    """``NodeMatches``: node name, else all nodes, else the selector; nothing set matches nothing."""
    if selection.node_name:
        return node.name == selection.node_name
    if selection.all_nodes:
        return True
    if selection.node_selector is not None:
        return selector_matches(node, selection.node_selector)
    return False


def selector_matches(node: Node, selector: Mapping[str, Any]) -> bool:
    for term in selector.get("nodeSelectorTerms") or ():
        expressions, fields = term.get("matchExpressions") or (), term.get("matchFields") or ()
        if not expressions and not fields:
            continue
        labels_ok = all(_label_requirement(node.labels, r) for r in expressions)
        if labels_ok and all(_field_requirement(node, r) for r in fields):
            return True
    return False


def _label_requirement(labels: Mapping[str, str], req: Mapping[str, Any]) -> bool:
    key, op, values = str(req.get("key", "")), str(req.get("operator", "")), [str(v) for v in req.get("values") or ()]
    match op:
        case "In" | "NotIn":
            if not values:
                raise ConfigError(f"node selector requirement {key}", f"operator {op} needs at least one value")
            found = key in labels and labels[key] in values
            return found if op == "In" else not found
        case "Exists" | "DoesNotExist":
            if values:
                raise ConfigError(f"node selector requirement {key}", f"operator {op} takes no values")
            return (key in labels) == (op == "Exists")
        case "Gt" | "Lt":
            if len(values) != 1:
                raise ConfigError(f"node selector requirement {key}", f"operator {op} needs exactly one value")
            try:
                bound = int(values[0])
            except ValueError as e:
                raise ConfigError(f"node selector requirement {key}", f"{values[0]!r} is not an integer") from e
            try:
                actual = int(labels[key])
            except (KeyError, ValueError):
                return False
            return actual > bound if op == "Gt" else actual < bound
    raise ConfigError(f"node selector requirement {key}", f"unknown operator {op!r}")


def _field_requirement(node: Node, req: Mapping[str, Any]) -> bool:
    key, op, values = str(req.get("key", "")), str(req.get("operator", "")), [str(v) for v in req.get("values") or ()]
    if op not in ("In", "NotIn") or len(values) != 1:
        raise ConfigError(f"node selector field {key}", "only In/NotIn with exactly one value are supported")
    found = key == "metadata.name" and node.name == values[0]
    return found if op == "In" else not found
