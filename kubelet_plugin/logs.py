"""Structured logs: every line of a prepare/unprepare carries the claim's UID and namespace/name.

Both are shortened to the longest valid value, so a claim reference that was never validated cannot
flood a log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

from dra_driver.k8s import LABEL_MAX, SUBDOMAIN_MAX, shorten
from dra_driver.kubeletplugin.protocol import ClaimRef
from dra_driver.kubeletplugin.validation import UID_MAX

_CONTEXT = ("claim_uid", "claim")


class ClaimLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to one claim."""

    def __init__(self, logger: logging.Logger, claim: ClaimRef) -> None:
        super().__init__(
            logger,
            {
                "claim_uid": shorten(claim.uid, UID_MAX),
                "claim": shorten(f"{claim.namespace}/{claim.name}", LABEL_MAX + 1 + SUBDOMAIN_MAX),
            },
        )

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        ctx = " ".join(f"{k}={getattr(record, k)}" for k in _CONTEXT if hasattr(record, k))
        return f"{base} {ctx}" if ctx else base


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: getattr(record, k) for k in _CONTEXT if hasattr(record, k)})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure(json_lines: bool, node: str) -> None:
    handler = logging.StreamHandler()
    if json_lines:
        handler.setFormatter(_Json())
    else:
        handler.setFormatter(_Text(f"%(asctime)s plugin[{node}] %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
