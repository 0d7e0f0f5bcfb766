"""Chat node processes on this machine, for ``python -m devstack`` and the end-to-end tests.

Each node is a real ``python -m chat serve`` process configured only through ``CHAT_*``
variables, exactly as a deployment runs it: devstack starts the server, it never imports it.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from devstack.net import pick_free_ports
from devstack.procs import ProcessHandle


class NodeStartError(RuntimeError):
    pass


class ChatNodeProcess(ProcessHandle):
    """One node (see ProcessHandle); ``stop()`` is its graceful shutdown and returns its exit
    code, which the lifecycle tests check."""

    start_error = NodeStartError
    ready_interval = 0.05
    # No orphan guard, as before the handles were merged: the guard ties a child to the
    # *thread* that spawned it (see devstack.procs), and nodes may be spawned from any thread.
    orphan_guard = False
    stop_on_failure = False  # a test may look at the failed process (its exit code)
    start_timeout = 30.0
    stop_timeout = 15.0

    def __init__(
        self,
        node_id: str,
        port: int,
        env: Mapping[str, str],
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        metrics_port: int | None = None,
    ) -> None:
        super().__init__(node_id, log_path)
        self.node_id = node_id
        self.port = port
        self.host = host
        # Nodes on one machine cannot share the default metrics port (9090).
        self.metrics_port = (
            pick_free_ports(1, exclude=[port])[0] if metrics_port is None else metrics_port
        )
        self.env = dict(env)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where the node serves ``/metrics`` (CHAT_METRICS_PORT; never its public port)."""
        return f"http://{self.host}:{self.metrics_port}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "chat", "serve"]

    def child_env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.env,
            "CHAT_NODE_ID": self.node_id,
            "CHAT_HOST": self.host,
            "CHAT_PORT": str(self.port),
            "CHAT_METRICS_PORT": str(self.metrics_port),
        }

    def ready(self) -> bool:
        """``/readyz`` answers 200."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def node_env(shards_env: str, cluster_env: str, secret: str, **extra: str) -> dict[str, str]:
    """The ``CHAT_*`` variables every node of one local stack shares."""
    env = {"CHAT_SHARDS": shards_env, "CHAT_CLUSTER": cluster_env, "CHAT_JWT_SECRET": secret}
    env.update({f"CHAT_{key.upper()}": value for key, value in extra.items()})
    return env
