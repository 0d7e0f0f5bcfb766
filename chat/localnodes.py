"""Chat node processes on this machine, for ``chat dev`` and the end-to-end tests.

Each node is a real ``python -m chat serve`` process configured only through ``CHAT_*``
variables, exactly as a deployment runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from chat.localnet import pick_free_ports
from chat.localredis import log_tail, wait_ready


class NodeStartError(RuntimeError):
    pass


class ChatNodeProcess:
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
        self.node_id = node_id
        self.port = port
        self.host = host
        # Nodes on one machine cannot share the default metrics port (9090).
        self.metrics_port = (
            pick_free_ports(1, exclude=[port])[0] if metrics_port is None else metrics_port
        )
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where the node serves ``/metrics`` (CHAT_METRICS_PORT; never its public port)."""
        return f"http://{self.host}:{self.metrics_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def spawn(self) -> None:
        env = {
            **os.environ,
            **self.env,
            "CHAT_NODE_ID": self.node_id,
            "CHAT_HOST": self.host,
            "CHAT_PORT": str(self.port),
            "CHAT_METRICS_PORT": str(self.metrics_port),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chat", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal must not reach it before we stop it
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll ``/readyz`` until 200."""
        problem = wait_ready(self.proc, self.ready, timeout, interval=0.05)
        if problem is not None:
            raise NodeStartError(f"{self.node_id} {problem}:\n{log_tail(self.log_path)}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 30.0) -> ChatNodeProcess:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (a graceful shutdown), SIGKILL if it overstays; return the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)


def node_env(shards_env: str, cluster_env: str, secret: str, **extra: str) -> dict[str, str]:
    """The ``CHAT_*`` variables every node of one local stack shares."""
    env = {"CHAT_SHARDS": shards_env, "CHAT_CLUSTER": cluster_env, "CHAT_JWT_SECRET": secret}
    env.update({f"CHAT_{key.upper()}": value for key, value in extra.items()})
    return env
