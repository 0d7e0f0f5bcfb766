"""Free ports for the local servers.  Stdlib only."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterable

_PORT_LOW, _PORT_HIGH = 12000, 22767  # port + 10000 stays below the ephemeral range (32768+)


class PortError(RuntimeError):
    """Not enough free ports."""


def _bindable(host: str, port: int) -> bool:
    # No SO_REUSEADDR on purpose: a port lingering in TIME_WAIT is skipped, which is stricter
    # than what the server needs and therefore safe.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_ports(
    count: int,
    *,
    host: str = "127.0.0.1",
    cluster_bus: bool = False,
    exclude: Iterable[int] = (),
) -> list[int]:
    """Pick ``count`` distinct free ports (and ``port+10000`` too when ``cluster_bus``).

    Ports come from [12000, 22767) so that bus ports stay below the Linux ephemeral range
    (32768+), where outgoing connections would otherwise steal them.  Random picks keep
    parallel test runs apart.  Tiny race: a port is only known to be free when checked; if
    something grabs it before the server binds, that server fails with "Address already in
    use", which its start() reports with the log tail.
    """
    chosen: list[int] = []
    taken = set(exclude)
    for _ in range(count * 200):
        if len(chosen) == count:
            break
        port = _PORT_LOW + secrets.randbelow(_PORT_HIGH - _PORT_LOW)
        needed = [port, port + 10000] if cluster_bus else [port]
        if taken.isdisjoint(needed) and all(_bindable(host, p) for p in needed):
            chosen.append(port)
            taken.update(needed)
    if len(chosen) != count:
        raise PortError(f"could not find {count} free ports on {host}")
    return chosen
