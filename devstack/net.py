"""Ports for the local servers: free ones, and those a fleet was given or recorded.  Stdlib
only."""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

_PORT_LOW, _PORT_HIGH = 12000, 22767  # port + 10000 stays below the ephemeral range (32768+)


PortSpec = int | Sequence[int] | None  # None: pick free ports; int: base port; list: explicit


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


def port_list(spec: PortSpec, count: int) -> list[int] | None:
    """``count`` ports from ``spec``; None if they are to be picked."""
    if spec is None:
        return None
    ports = list(range(spec, spec + count)) if isinstance(spec, int) else list(spec)
    if len(ports) != count:
        raise ValueError(f"need {count} ports, got {ports}")
    return ports


def fleet_ports(
    record: Path | None,
    shard_spec: list[int] | None,
    cluster_spec: list[int] | None,
    *,
    shards: int,
    nodes: int,
    host: str,
) -> tuple[list[int], list[int]]:
    """The (shard, cluster node) ports of a fleet: a persistent fleet's ``record``
    (fleet.json) wins for the cluster, then the ports given, then free ones; the result is
    written back to ``record``."""
    saved = json.loads(record.read_text()) if record is not None and record.exists() else {}
    stored = saved.get("cluster_ports")
    if (
        record is not None
        and stored
        and (len(stored) != nodes or cluster_spec not in (None, stored))
    ):
        # nodes.conf pins every node's address: other ports would leave the nodes unable
        # to find each other, and a different topology cannot be loaded at all.
        raise ValueError(
            f"{record.parent} holds a cluster on ports {stored}; use those ports and topology "
            "or remove the directory"
        )
    cluster = stored or cluster_spec or pick_free_ports(nodes, host=host, cluster_bus=True)
    stored_shards = saved.get("shard_ports")
    if shard_spec is not None:
        shard_ports = shard_spec
    elif stored_shards and len(stored_shards) == shards:
        shard_ports = stored_shards
    else:
        busy = [*cluster, *(p + 10000 for p in cluster)]
        shard_ports = pick_free_ports(shards, host=host, exclude=busy)
    if record is not None:
        record.write_text(json.dumps({"shard_ports": shard_ports, "cluster_ports": cluster}))
    return list(shard_ports), list(cluster)
