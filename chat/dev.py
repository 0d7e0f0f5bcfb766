"""``chat dev``: the whole stack on one machine, no root and no Docker.

Three pub/sub shards and a Redis Cluster (3 masters + 3 replicas, AOF on) from the embedded
server binary, plus chat nodes on consecutive ports.  State (cluster data, the JWT secret,
logs) stays in the data directory between runs.  Ctrl-C stops everything it started.
"""

from __future__ import annotations

import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from chat.localcluster import RedisFleet
from chat.localnet import LocalRedisError
from chat.localnodes import ChatNodeProcess, NodeStartError, node_env
from chat.localredis import log_tail

SECRET_FILE = "jwt_secret"  # noqa: S105 - a file name, not a secret


def dev_secret(data_dir: Path) -> str:
    """The stack's JWT secret: generated once, then kept (tokens survive restarts)."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip()


def _origins(ports: list[int]) -> str:
    return ",".join(
        f"http://{host}:{port}" for port in ports for host in ("127.0.0.1", "localhost")
    )


def _banner(data_dir: Path, fleet: RedisFleet, nodes: list[ChatNodeProcess]) -> str:
    lines = ["", "chat dev: the stack is up", ""]
    lines += [f"  {n.node_id:<8} {n.url}   (log: {n.log_path})" for n in nodes]
    lines += [
        f"  shards   {fleet.shards_env}",
        f"  cluster  {fleet.cluster_env}",
        "",
        "  Get an account and a token (any node):",
        f"    curl -s -X POST {nodes[0].url}/api/register -H 'Content-Type: application/json' \\",
        """      -d '{"email": "alice@example.com", "password": "choose a passphrase"}'""",
        "  A token for an existing user id, signed with this stack's secret:",
        f"    {Path(sys.executable).parent / 'chat'} token --user <id> --data-dir {data_dir}",
        "  Two python-socketio clients on the two nodes exchanging a DM:",
        f"    {sys.executable} examples/dm_pair.py",
        "",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_dev(data_dir: Path, *, nodes: int = 2, port: int = 8001, redis_port: int = 7100) -> int:
    data_dir = data_dir.resolve()
    secret = dev_secret(data_dir)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops it as cleanly as Ctrl-C
    fleet = RedisFleet(
        shards=3,
        masters=3,
        replicas=1,
        data_dir=data_dir / "redis",
        persistent=True,
        shard_ports=redis_port,
        cluster_ports=redis_port + 10,
    )
    ports = list(range(port, port + nodes))
    procs: list[ChatNodeProcess] = []
    try:
        print(f"chat dev: starting Redis shards and cluster in {data_dir / 'redis'} ...")
        fleet.start()
        env = node_env(fleet.shards_env, fleet.cluster_env, secret, origins=_origins(ports))
        for i, node_port in enumerate(ports):
            procs.append(ChatNodeProcess(f"node{i}", node_port, env, data_dir / f"node{i}.log"))
            procs[-1].spawn()
        for proc in procs:
            proc.wait_ready()
        print(_banner(data_dir, fleet, procs), flush=True)
        return _watch(procs)
    except KeyboardInterrupt:
        print("\nchat dev: stopping ...")
        return 0
    except (LocalRedisError, NodeStartError) as exc:
        print(f"chat dev: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in procs:
            proc.stop()
        fleet.stop()
        print("chat dev: stopped.")


def _watch(procs: list[ChatNodeProcess]) -> int:
    """Block until Ctrl-C; if a node dies on its own, say why and stop the rest."""
    while True:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is not None:
                print(f"chat dev: {proc.node_id} exited:\n{log_tail(proc.log_path)}")
                return 1
        time.sleep(0.5)
