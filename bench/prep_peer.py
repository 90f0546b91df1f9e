"""The Go baseline plugin (bench/go/kubeletplugin) as a process for bench_prepare: start, wait ready, RSS, stop."""

from __future__ import annotations

import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.prep_gobuild import find_or_build


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc/<pid>/status (MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


@dataclass
class GoPlugin:
    process: subprocess.Popen[str]
    dra_socket: Path
    started_s: float  # process start -> DRA socket listening

    @classmethod
    def start(cls, root: Path, kubeconfig: Path, driver: str, node: str, timeout_s: float = 30.0) -> GoPlugin:
        binary = find_or_build()
        argv = [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            f"--driver-name={driver}",
            f"--node-name={node}",
            f"--plugin-dir={root / 'plugins'}",
            f"--registrar-dir={root / 'registry'}",
            f"--cdi-dir={root / 'cdi'}",
            f"--checkpoint={root / 'state' / 'checkpoint.json'}",
        ]
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        log = open(root / "go-plugin.log", "w")  # noqa: SIM115  (the child writes to it until it exits)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the Go plugin did not start: {(root / 'go-plugin.log').read_text()[-2000:]}")
        return cls(proc, Path(line.split(" ", 1)[1].strip()), time.perf_counter() - t0)

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
