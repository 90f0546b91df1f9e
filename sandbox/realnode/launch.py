"""How ``dra-gpu sandbox up`` starts a sandbox with real nodes: the kubelet choice and the supervisor's launch.

The supervisor of a real-node sandbox runs under ``unshare --net --mount --propagation private``. Before
that, ``up`` binds the API port on the host's loopback and hands the listening socket down (see forward.py).
"""

from __future__ import annotations

import socket

from sandbox.realnode.forward import bind_host_listener
from sandbox.realnode.host import why_not_real

KUBELETS = ("real", "simulated")


def resolve_kubelet(requested: str | None) -> tuple[str, str | None]:
    """(kubelet, notice): the default is real where the host allows it, else simulated with a one-line notice;
    asking for real where it cannot run is an error (ValueError with the reason)."""
    if requested is not None and requested not in KUBELETS:
        raise ValueError(f"--kubelet: {requested!r} is not one of {', '.join(KUBELETS)}")
    if requested == "simulated":
        return "simulated", None
    reason = why_not_real()
    if reason is None:
        return "real", None
    if requested == "real":
        raise ValueError(f"--kubelet real: {reason}")
    return "simulated", f"using the simulated kubelet: {reason}"


def supervisor_prefix() -> tuple[str, ...]:
    return ("unshare", "--net", "--mount", "--propagation", "private", "--")


def host_listener() -> tuple[socket.socket, tuple[str, ...]]:
    """The listening socket for the API port and the supervisor arguments that hand it over."""
    listener = bind_host_listener()
    return listener, ("--kubelet=real", f"--api-listen-fd={listener.fileno()}")
