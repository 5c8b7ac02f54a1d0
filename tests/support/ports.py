"""A port for a server a test starts in a process of its own (``--port N``).

``bind(("127.0.0.1", 0))`` hands out a port from the kernel's ephemeral range, the range every outgoing
connection (to PostgreSQL, Redis, the fake WeChat …) also takes its local port from. Between the probe
closing and the server binding, another worker's connection can take that very port, and the server dies
with "address already in use" (seen in CI). So the ports here come from below the ephemeral range, which
nothing takes by itself, picked at random and checked free; two workers picking the same one at the same
moment is the remaining, far smaller, chance.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOW = 20_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and outside the ephemeral range."""
    high = max(LOW + 1_000, _ephemeral_start())
    for _ in range(200):
        port = random.randrange(LOW, high)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {LOW} and {high}")
