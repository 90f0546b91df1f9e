"""HTTP(S) probes of the control-plane components' health endpoints."""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class TlsIdentity:
    """Trust ``ca`` and present the client certificate ``cert``/``key``."""

    ca: Path
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def get(url: str, context: ssl.SSLContext | None = None, timeout: float = PROBE_TIMEOUT_S) -> tuple[int, str]:
    """(status, body) of a GET; a connection failure raises OSError."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc


def check_ok(url: str, context: ssl.SSLContext | None = None, expect: str = "ok") -> str | None:
    """None when GET ``url`` answers 200 with a body containing ``expect``, else why not (one line)."""
    try:
        status, body = get(url, context)
    except OSError as exc:
        return f"GET {url}: {getattr(exc, 'reason', None) or exc}"
    if status == 200 and expect in body:
        return None
    failing = [line for line in body.splitlines() if line.startswith("[-]")]
    detail = "; ".join(failing[:3]) if failing else body.strip().replace("\n", " ")[:200]
    return f"GET {url}: HTTP {status}: {detail}"
