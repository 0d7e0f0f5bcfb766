"""The whole stack on one machine (``make run``), no root and no Docker.

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

from devstack.cluster import RedisFleet
from devstack.net import PortError
from devstack.nginx import NginxError, NginxProcess, find_nginx
from devstack.nodes import ChatNodeProcess, NodeStartError, node_env
from devstack.procs import log_tail
from devstack.redis_client import LocalRedisError

#: Where ``chat token`` looks too (chat/cli.py's DEV_SECRET_FILE; tests/e2e/test_devstack.py).
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


def _banner(
    data_dir: Path, fleet: RedisFleet, nodes: list[ChatNodeProcess], lb: NginxProcess | None
) -> str:
    lines = ["", "devstack: the stack is up", ""]
    if lb is not None:
        lines += [
            f"  open     {lb.url}   (nginx, sticky; logs: {lb.access_log.parent})",
            "",
        ]
    lines += [
        f"  {n.node_id:<8} {n.url}   (log: {n.log_path}; {n.metrics_url}/metrics)" for n in nodes
    ]
    lines += [
        f"  shards   {fleet.shards_env}",
        f"  cluster  {fleet.cluster_env}",
        "",
        "  Get an account and a token (any node):",
        f"    curl -s -X POST {nodes[0].url}/api/register -H 'Content-Type: application/json' \\",
        """      -d '{"email": "alice@example.com", "password": "choose a passphrase"}'""",
        "  A token for an existing user id, signed with this stack's secret:",
        f"    {Path(sys.executable).parent / 'chat'} token --user <id> --data-dir {data_dir}",
        "  A service token for a bot (printed once; the echo bot reads BOT_TOKEN):",
        f"    CHAT_SHARDS='{fleet.shards_env}' CHAT_CLUSTER='{fleet.cluster_env}' \\",
        f"    CHAT_JWT_SECRET_FILE={data_dir / SECRET_FILE} \\",
        f"    {Path(sys.executable).parent / 'chat'} tokens create --name echo",
        "  Two python-socketio clients on the two nodes exchanging a DM:",
        f"    {sys.executable} examples/dm_pair.py",
        "",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _node_env(
    fleet: RedisFleet, secret: str, ports: list[int], lb_port: int | None
) -> dict[str, str]:
    # The dev fleet runs without passwords or TLS (node_options is then empty); a fleet
    # that has them hands the nodes what they need here.
    access = fleet.node_options()
    if lb_port is None:
        return node_env(
            fleet.shards_env, fleet.cluster_env, secret, origins=_origins(ports), **access
        )
    # Behind nginx: the browser's origin is the balancer's, and X-Forwarded-For comes from it.
    return node_env(
        fleet.shards_env,
        fleet.cluster_env,
        secret,
        origins=_origins([*ports, lb_port]),
        trusted_proxies="127.0.0.1",
        **access,
    )


def _dev_fleet(data_dir: Path, redis_port: int) -> RedisFleet:
    return RedisFleet(
        shards=3,
        masters=3,
        replicas=1,
        data_dir=data_dir / "redis",
        persistent=True,
        shard_ports=redis_port,
        cluster_ports=redis_port + 10,
    )


def _balancer(data_dir: Path, ports: list[int], lb_port: int | None) -> NginxProcess | None:
    """nginx for ``--lb``, looked up before anything starts: a missing one is said at once."""
    if lb_port is None:
        return None
    lb = NginxProcess(lb_port, [f"127.0.0.1:{p}" for p in ports], data_dir / "nginx")
    lb.binary = find_nginx()
    return lb


def run_dev(
    data_dir: Path,
    *,
    nodes: int = 2,
    port: int = 8001,
    redis_port: int = 7100,
    lb_port: int | None = None,
) -> int:
    """The stack; with ``lb_port``, nginx on it in front of the nodes (``--lb``)."""
    data_dir = data_dir.resolve()
    secret = dev_secret(data_dir)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops it as cleanly as Ctrl-C
    fleet = _dev_fleet(data_dir, redis_port)
    ports = list(range(port, port + nodes))
    procs: list[ChatNodeProcess] = []
    lb: NginxProcess | None = None
    try:
        lb = _balancer(data_dir, ports, lb_port)
        print(f"devstack: starting Redis shards and cluster in {data_dir / 'redis'} ...")
        fleet.start()
        env = _node_env(fleet, secret, ports, lb_port)
        for i, node_port in enumerate(ports):
            procs.append(ChatNodeProcess(f"node{i}", node_port, env, data_dir / f"node{i}.log"))
            procs[-1].spawn()
        for proc in procs:
            proc.wait_ready()
        if lb is not None:
            lb.start()
        print(_banner(data_dir, fleet, procs, lb), flush=True)
        return _watch(procs, lb)
    except KeyboardInterrupt:
        print("\ndevstack: stopping ...")
        return 0
    except (LocalRedisError, PortError, NodeStartError, NginxError) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    finally:
        if lb is not None:
            lb.stop()
        for proc in procs:
            proc.stop()
        fleet.stop()
        print("devstack: stopped.")


def _watch(procs: list[ChatNodeProcess], lb: NginxProcess | None) -> int:
    """Block until Ctrl-C; if a node (or nginx) dies on its own, say why and stop the rest."""
    while True:
        for proc in procs:
            if not proc.alive:
                print(f"devstack: {proc.node_id} exited:\n{log_tail(proc.log_path)}")
                return 1
        if lb is not None and not lb.alive:
            print(f"devstack: nginx exited:\n{log_tail(lb.error_log)}")
            return 1
        time.sleep(0.5)
