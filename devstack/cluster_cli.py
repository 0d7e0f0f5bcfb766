"""``valkey-cli --cluster ...``: how the local fleet creates its cluster and changes it while
it runs (add a node, move slots, remove a node), with the cli's output kept in a log file.

Imports the stdlib and :mod:`devstack.procs`, :mod:`devstack.redis_client`,
:mod:`devstack.redis_server`.  These are the commands an operator runs (docs/deploy.md), so
the tests exercise exactly those, not a re-implementation of slot migration.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from devstack.procs import log_tail
from devstack.redis_client import Access
from devstack.redis_server import RedisProcess, RedisStartError

#: Keys moved per MIGRATE while resharding (the cli's default is 10): a room's slot holds its
#: idempotency records too, and the slot stays half-moved (TRYAGAIN) until all are across.
MIGRATE_PIPELINE = 100


class ClusterCli:
    """Runs ``valkey-cli --cluster`` against a fleet's nodes; every run appends its output to
    ``log_path`` and a failure raises RedisStartError with the log's tail."""

    def __init__(self, cli: Path, access: Access, log_path: Path) -> None:
        self.cli, self.access, self.log_path = cli, access, log_path

    def run(self, command: str, *args: str, deadline: float) -> None:
        argv = [str(self.cli), *self.access.cli_args(), "--cluster", command, *args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # it prints a lot; only the tail goes into errors
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                code: int | None = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=max(deadline - time.monotonic(), 5.0),
                    check=False,
                    env={**os.environ, **self.access.cli_env()},
                ).returncode
            except subprocess.TimeoutExpired:
                code = None
        if code != 0:
            raise RedisStartError(f"`{' '.join(argv)}` failed ({code}):\n{log_tail(self.log_path)}")

    def create(self, nodes: list[str], replicas: int, deadline: float) -> None:
        self.run("create", *nodes, "--cluster-replicas", str(replicas), "--cluster-yes",
                 deadline=deadline)  # fmt: skip

    def add_master(self, new: RedisProcess, entry: RedisProcess, deadline: float) -> None:
        """Join ``new`` (an empty cluster-enabled server) as a master without slots."""
        self.run("add-node", new.address, entry.address, deadline=deadline)

    def add_replica(
        self, new: RedisProcess, master: RedisProcess, entry: RedisProcess, deadline: float
    ) -> None:
        self.run(
            *("add-node", new.address, entry.address),
            *("--cluster-slave", "--cluster-master-id", node_id(master)),
            deadline=deadline,
        )

    def fill(self, master: RedisProcess, entry: RedisProcess, deadline: float) -> None:
        """Give the empty ``master`` its even share of the slots, taken from the others."""
        self.run(
            *("rebalance", entry.address, "--cluster-use-empty-masters"),
            *("--cluster-pipeline", str(MIGRATE_PIPELINE)),
            deadline=deadline,
        )

    def drain(self, master: RedisProcess, entry: RedisProcess, deadline: float) -> None:
        """Move every slot of ``master`` to the other masters (weight 0: its share is none)."""
        self.run(
            *("rebalance", entry.address, "--cluster-weight", f"{node_id(master)}=0"),
            *("--cluster-pipeline", str(MIGRATE_PIPELINE)),
            deadline=deadline,
        )

    def delete(self, node: str, entry: RedisProcess, deadline: float) -> None:
        """Make every other node forget the node of id ``node`` (it must own no slots); the
        cli then resets it (CLUSTER RESET SOFT), so it leaves the cluster for good."""
        self.run("del-node", entry.address, node, deadline=deadline)


def node_id(node: RedisProcess) -> str:
    return str(node.command("CLUSTER", "MYID"))
