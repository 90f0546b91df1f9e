"""``python -m controller`` as a process for the end-to-end tests, on a ModePolicy that lets it act only on the
nodes labelled ``<label>=true`` (so tests sharing a sandbox never see each other's changes)."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from e2e.wait import until
from sandbox.ports import pick_free_ports

READY_TIMEOUT_S = 60


def http_status(port: int, path: str) -> int:
    """The status code of ``GET http://127.0.0.1:<port><path>``; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


@dataclass
class Controllers:
    """Starts controllers against ``kubeconfig`` with their files in ``workdir``; ``close`` stops them all."""

    kubeconfig: Path
    workdir: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    explain_ports: dict[int, int] = field(default_factory=dict)  # process id -> its explain listener's port

    def start(
        self,
        label: str,
        *,
        dry_run: bool = False,
        grace_s: int = 3,
        cooldown_s: int = 30,
        lease: str = "",
        identity: str = "",
        lease_s: float | None = None,
    ) -> tuple[subprocess.Popen[bytes], int, Path]:
        """A controller ready on /readyz: (process, metrics/health port, log); its policy is beside the log
        (``log.with_suffix(".policy.yaml")``). ``lease`` defaults to a fresh Lease name; ``lease_s`` shortens its
        lease (renewed every 0.5 s)."""
        name = identity or f"ctl-{uuid.uuid4().hex[:6]}"
        log = self.workdir / f"controller-{name}.log"
        policy = log.with_suffix(".policy.yaml")
        document = {
            "apiVersion": "gpu.dra-driver.dev/v1alpha1",
            "kind": "ModePolicy",
            "nodeSelector": {label: "true"},
            "pendingGraceSeconds": grace_s,
            "cooldownSeconds": cooldown_s,
            "dryRun": dry_run,
        }
        policy.write_text(yaml.safe_dump(document))
        port, explain_port = pick_free_ports(2)
        argv = [
            sys.executable, "-m", "controller", "--kubeconfig", str(self.kubeconfig), "--policy", str(policy),
            "--address", "127.0.0.1", "--port", str(port), "--explain-port", str(explain_port), "--resync-seconds", "1",
            "--lease-name", lease or f"e2e-{uuid.uuid4().hex[:6]}", "--lease-namespace", "default",
        ]  # fmt: skip
        if identity:
            argv += ["--identity", identity]
        if lease_s is not None:
            argv += ["--lease-seconds", str(lease_s), "--renew-seconds", "0.5"]
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.started.append(proc)
        self.explain_ports[proc.pid] = explain_port
        until(lambda: http_status(port, "/readyz") == 200, f"controller {name} ready (log: {log})", READY_TIMEOUT_S)
        return proc, port, log

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
