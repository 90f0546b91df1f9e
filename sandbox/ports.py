"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import socket
from contextlib import ExitStack

LOOPBACK = "127.0.0.1"


def pick_free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct ports that were free a moment ago (the kernel picks; all held at once so none repeats).

    There is a window between closing the probe sockets and the component binding the port; a component that
    loses that race fails to start and its log says "address already in use": start the sandbox again.
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind((LOOPBACK, 0))
            ports.append(int(s.getsockname()[1]))
        return tuple(ports)
